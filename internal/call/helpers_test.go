package call_test

import (
	"bytes"
	"context"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/call"
	"github.com/docshield/voice-worker/internal/realtime"
	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/docshield/voice-worker/internal/telephony/calleesim"
	"github.com/docshield/voice-worker/internal/telephony/sipphone"
	"github.com/docshield/voice-worker/internal/telephony/sipphone/siptest"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/hraban/opus.v2"
)

func TestMain(m *testing.M) {
	telephony.SetSDKLogger(zap.NewNop())
	os.Exit(m.Run())
}

// wait bounds every wait in these tests. It is generous: a busy 2-core
// machine runs LiveKit, FerretDB and both simulators next to the test, and
// nothing here measures time.
const wait = 45 * time.Second

const (
	rate         = telephony.DefaultSampleRate
	callerID     = "+15550001111"
	instructions = "You are Ava, calling {{practice_name}} on behalf of DocShield about a medical records request."
)

// calleePhone is a number where it is mid-afternoon now: calls are placed
// only inside calling hours where the callee is, and these tests must pass
// at any hour.
var calleePhone = testenv.SampleAt(time.Now(), testenv.Afternoon).Phone

// scenario is one end-to-end call: what the model says and does (the
// realtime simulator's script), what the callee does (the SIP phone's
// script, or the callee simulator's for calleesim calls), and the call's
// settings.
type scenario struct {
	model realtimesim.Script
	// phone is the SIP phone's script (newSIPCallEnv).
	phone sipphone.Script
	// callee is the callee simulator's script (newCallEnv).
	callee calleesim.Script
	// prompt adjusts the inline call's prompt (voicemail message,
	// transfer number).
	prompt   func(*call.Prompt)
	timers   call.Timers
	localVAD call.LocalVAD
	// variables of the inline call; nil: practice_name only.
	variables    map[string]string
	instructions string
	// lease is the claim's lease (the handler's and the runner's); 0: the
	// default.
	lease     time.Duration
	dialCheck func(context.Context, *store.Call) (string, error)
	// dialer wraps the call's dialer; nil: as it is.
	dialer func(telephony.Dialer) telephony.Dialer
}

// callEnv is one call's worth of real servers: FerretDB, LiveKit (with its
// SIP service) and the simulators, with a Runner wired as the worker wires
// it. A SIP call (newSIPCallEnv) has line; a calleesim call (newCallEnv)
// has dialer.
type callEnv struct {
	st       *store.Store
	sim      *realtimesim.Server
	dialer   *calleesim.Dialer
	line     siptest.Line
	pcMu     sync.Mutex     // guards pc
	pc       *sipphone.Call // the phone's call, once phoneCall found it
	rooms    *telephony.Rooms
	clock    *hangupClock // the Runner's rooms: when the call hung up
	runner   *call.Runner
	handler  *call.Handler
	analyze  *enqueuer
	recorder *tapeRecorder
	id       string
	room     string
	log      *logBuffer
}

// newCallEnv is a call answered by the callee simulator: a participant in
// the call's room, with no SIP leg. It is the fast variant, and what the
// recording tests and benchmarks use; the scenarios run over SIP
// (newSIPCallEnv).
func newCallEnv(t testing.TB, sc scenario) *callEnv {
	t.Helper()
	e := newEnv(t)
	tcfg := stackTelephony(t)
	var err error
	e.dialer, err = calleesim.NewDialer(tcfg, calleesim.DialerOptions{
		Script: func(telephony.DialRequest) calleesim.Script { return sc.callee },
		Callee: calleesim.Options{KeepAudio: 30 * time.Second},
		Logger: e.log.logger,
	})
	require.NoError(t, err)
	t.Cleanup(e.dialer.Close)
	e.start(t, sc, tcfg, e.dialer)
	return e
}

// newEnv is a callEnv's database, attempt and logs.
func newEnv(t testing.TB) *callEnv {
	t.Helper()
	e := &callEnv{
		st:      openStore(t),
		analyze: &enqueuer{},
		id:      testenv.UniqueName(t),
		log:     newLogBuffer(t),
	}
	e.room = telephony.RoomName(e.id)
	return e
}

// stackTelephony is the stack's LiveKit with the calls' settings.
func stackTelephony(t testing.TB) telephony.Config {
	lk := testenv.LiveKit(t)
	return telephony.Config{URL: lk.URL, APIKey: lk.APIKey, APISecret: lk.APISecret, CallerID: callerID, RingTimeout: 2 * time.Second}
}

// start builds the model simulator and the Runner, dialing with dialer.
func (e *callEnv) start(t testing.TB, sc scenario, tcfg telephony.Config, dialer telephony.Dialer) {
	t.Helper()
	var err error
	e.rooms, err = telephony.NewRooms(tcfg, e.log.logger)
	require.NoError(t, err)
	e.clock = &hangupClock{Rooms: e.rooms}
	if sc.dialer != nil {
		dialer = sc.dialer(dialer)
	}

	if sc.model.ResponseDelayMS == 0 {
		sc.model.ResponseDelayMS = 100
	}
	e.sim = realtimesim.New(sc.model, realtimesim.WithLogger(e.log.logger))
	base, err := e.sim.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.sim.Close()) })

	timers := sc.timers
	if timers.Silence == 0 {
		timers.Silence = time.Minute // only the silence scenario hears silence out
	}
	if timers.ShutdownLine == 0 {
		timers.ShutdownLine = 5 * time.Second
	}
	prompts := call.StorePrompts(e.st)
	if sc.prompt != nil {
		prompts = func(ctx context.Context, c *store.Call) (call.Prompt, error) {
			p, err := call.StorePrompts(e.st)(ctx, c)
			sc.prompt(&p)
			return p, err
		}
	}
	e.runner, err = call.NewRunner(call.Options{
		Store:     e.st,
		Rooms:     e.clock,
		Dialer:    dialer,
		Telephony: tcfg,
		Realtime: realtime.Config{
			BaseURL: base, APIKey: realtimesim.DefaultAPIKey, HandshakeTimeout: wait,
			VAD: realtime.VAD{SilenceDurationMS: 300, PrefixPaddingMS: 100},
		},
		Prompts:   prompts,
		DialCheck: sc.dialCheck,
		Analyze:   e.analyze,
		Timers:    timers,
		LocalVAD:  sc.localVAD,
		Recordings: func(context.Context, store.Claim, *store.Call, time.Time) (call.Recorder, error) {
			e.recorder = newTapeRecorder(t)
			return e.recorder, nil
		},
		Logger: e.log.logger,
	})
	require.NoError(t, err)
	e.handler = &call.Handler{Calls: e.st, Runner: e.runner, Owner: "test-worker", Lease: sc.lease}
}

// inlineTask is the call:outbound task of an inline call to calleePhone.
func (e *callEnv) inlineTask(t testing.TB, sc scenario) *asynq.Task {
	t.Helper()
	vars := sc.variables
	if vars == nil {
		vars = map[string]string{"practice_name": "Elm Dental"}
	}
	instr := sc.instructions
	if instr == "" {
		instr = instructions
	}
	return task(t, tasks.CallOutbound{Inline: &tasks.InlineCall{
		AttemptID: e.id, Phone: calleePhone, Instructions: instr, Variables: vars,
	}})
}

// run handles the task on ctx and returns the call document once Run is
// over. The handler must never ask asynq to retry a call.
func (e *callEnv) run(t testing.TB, ctx context.Context, tk *asynq.Task) *store.Call {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- e.handler.ProcessTask(ctx, tk) }()
	select {
	case err := <-done:
		require.NoError(t, err, "a call's task never fails: it would be redialed")
	case <-time.After(2 * wait):
		t.Fatal("the call did not end")
	}
	return e.doc(t)
}

func (e *callEnv) doc(t testing.TB) *store.Call {
	t.Helper()
	c, err := e.st.GetCall(context.Background(), e.id)
	require.NoError(t, err)
	return c
}

func (e *callEnv) details(t testing.TB) store.CallDetails {
	t.Helper()
	d, err := e.st.GetCallDetails(context.Background(), e.id)
	require.NoError(t, err)
	return d
}

// requireEnded checks what every ended call must have: the status, a
// reason, the end stamped, the room gone, call:analyze enqueued.
func (e *callEnv) requireEnded(t testing.TB, c *store.Call, status store.CallStatus) store.CallDetails {
	t.Helper()
	d := e.details(t)
	require.Equal(t, status, c.Status, "end reason: %s", d.EndReason)
	require.NotEmpty(t, d.EndReason)
	require.False(t, c.EndedAt.IsZero())
	require.Equal(t, 1, c.Claims)
	exists, err := e.rooms.Exists(context.Background(), e.room)
	require.NoError(t, err)
	require.False(t, exists, "the room is deleted")
	require.Equal(t, []string{e.id}, e.analyze.attempts(), "call:analyze enqueued once")
	return d
}

// answeredCall is the simulated callee of the call, once it answered.
func (e *callEnv) answeredCall(t testing.TB) *calleesim.Call {
	t.Helper()
	c := e.dialer.Call(e.room)
	require.NotNil(t, c, "the callee answered")
	return c
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	t.Cleanup(cancel)
	return ctx
}

// tone is callee "speech": loud enough for any energy detector.
func tone(d time.Duration) []int16 { return calleesim.Tone(600, d, rate, 0.3) }

func toolArgs(s string) []byte { return []byte(s) }

func roles(turns []store.Turn) []string {
	out := make([]string, len(turns))
	for i, tn := range turns {
		out[i] = tn.Role
	}
	return out
}

func toolNames(tcs []store.ToolCall) []string {
	out := make([]string, len(tcs))
	for i, tc := range tcs {
		out[i] = tc.Name
	}
	return out
}

// requireOrdered checks the turns' offsets: each turn spans forward, and
// each starts after the one before it started.
func requireOrdered(t testing.TB, turns []store.Turn) {
	t.Helper()
	for i, tn := range turns {
		require.GreaterOrEqual(t, tn.StartMS, int64(0), "turn %d", i)
		require.GreaterOrEqual(t, tn.EndMS, tn.StartMS, "turn %d", i)
		if i > 0 {
			require.Greater(t, tn.StartMS, turns[i-1].StartMS, "turn %d starts after turn %d", i, i-1)
		}
	}
}

// enqueuer records call:analyze tasks.
type enqueuer struct {
	mu  sync.Mutex
	ids []string
}

func (q *enqueuer) Enqueue(_ context.Context, p tasks.Payload, _ ...asynq.Option) (*asynq.TaskInfo, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if a, ok := p.(tasks.CallAnalyze); ok {
		q.ids = append(q.ids, a.AttemptID)
	}
	return &asynq.TaskInfo{}, nil
}

func (q *enqueuer) attempts() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.ids...)
}

// tapeRecorder stands in for internal/recording: it counts the packets it
// is given, decodes the agent's to measure how much voice they hold and to
// keep the agent's side as played (for comparing with what the phone
// heard), and checks nothing arrives after Close.
type tapeRecorder struct {
	mu                          sync.Mutex
	calleePackets, agentPackets int
	agentVoiced                 int // 24 kHz samples of agent packets louder than silence
	agentSamples                int
	agent                       []playedChunk // up to keepAgent samples
	dec                         *opus.Decoder
	pcm                         []int16
	lastAgentAt                 time.Time
	agentOutOfOrder             bool
	closed, afterClosed         bool
}

// playedChunk is agent audio handed to the recording: at is when its first
// sample was played.
type playedChunk struct {
	at  time.Time
	pcm []int16
}

// keepAgent bounds the agent audio a tapeRecorder keeps.
const keepAgent = 60 * rate

func newTapeRecorder(t testing.TB) *tapeRecorder {
	dec, err := opus.NewDecoder(rate, 1)
	require.NoError(t, err)
	return &tapeRecorder{dec: dec, pcm: make([]int16, 5760)}
}

func (r *tapeRecorder) CalleePacket(_ time.Time, pkt []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.afterClosed = r.afterClosed || r.closed
	r.calleePackets++
}

func (r *tapeRecorder) AgentPacket(at time.Time, pkt []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.afterClosed = r.afterClosed || r.closed
	r.agentOutOfOrder = r.agentOutOfOrder || at.Before(r.lastAgentAt)
	r.lastAgentAt = at
	r.agentPackets++
	n, err := r.dec.Decode(pkt, r.pcm)
	if err != nil {
		return
	}
	if rmsOf(r.pcm[:n]) > 30 {
		r.agentVoiced += n
	}
	if r.agentSamples+n <= keepAgent {
		r.agent = append(r.agent, playedChunk{at: at, pcm: slices.Clone(r.pcm[:n])})
	}
	r.agentSamples += n
}

func rmsOf(pcm []int16) float64 {
	var e float64
	for _, v := range pcm {
		e += float64(v) * float64(v)
	}
	return math.Sqrt(e / float64(max(len(pcm), 1)))
}

// agentPlayed returns the agent audio recorded, in order.
func (r *tapeRecorder) agentPlayed() []playedChunk {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]playedChunk(nil), r.agent...)
}

func (r *tapeRecorder) Close(context.Context) (*store.Recording, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return &store.Recording{Bucket: "tape", Key: "recordings/test.opus", Format: "opus",
		DurationMS: int64(max(r.calleePackets, r.agentPackets) * 20)}, nil
}

// agentMS is the agent's voice in the packets sent, to the 20 ms frame.
func (r *tapeRecorder) agentMS() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return int64(r.agentVoiced * 1000 / rate)
}

// logBuffer keeps the call's logs and prints them if the test failed (or
// CALL_TEST_LOGS is set).
// Goroutines of the SDK may log after the test ended, which t.Log forbids.
type logBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	logger *zap.Logger
}

func newLogBuffer(t testing.TB) *logBuffer {
	l := &logBuffer{}
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	l.logger = zap.New(zapcore.NewCore(enc, zapcore.AddSync(l), zap.DebugLevel))
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("CALL_TEST_LOGS") != "" {
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Logf("logs:\n%s", l.buf.String())
		}
	})
	return l
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() > 4<<20 {
		return len(p), nil
	}
	return l.buf.Write(p)
}

// goroutines counts goroutines, leaving out idle HTTP keep-alive
// connections (they belong to the API clients, not to a call) and the SIP
// phone's (the far end of the line, which runs in the test's process;
// its SIP transactions outlive a call by design).
func goroutines() (int, string) {
	buf := make([]byte, 4<<20)
	all := string(buf[:runtime.Stack(buf, true)])
	n := 0
	for _, g := range strings.Split(all, "\n\n") {
		if !strings.Contains(g, "net/http.(*persistConn)") && !strings.Contains(g, "github.com/emiago/") &&
			!strings.Contains(g, "internal/telephony/sipphone") {
			n++
		}
	}
	return n, all
}
