package call_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/call"
	"github.com/docshield/voice-worker/internal/realtime"
	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/docshield/voice-worker/internal/telephony/sipphone"
	"github.com/docshield/voice-worker/internal/telephony/sipphone/siptest"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/tasks"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// The phone leg as a person on the phone hears it, through LiveKit's SIP
// service (livekit-sip, G.711 over RTP on loopback) to the SIP phone
// (sipphone), which stamps what it says and what it hears. Each op is one
// level of N concurrent calls (SIP_LEG_LEVELS, default 1,10), and a level
// runs two things side by side on the same phone line and trunk:
//
//   - the floor: N rooms, each with a plain echo participant (bench_test.go's
//     echo: telephony.Join's seat, republishing every 20 ms of what it hears
//     through its Player) and the phone dialled into it through the SIP
//     service. The phone says a 300 ms tone every second. None of the call
//     code is in it.
//   - the worker: N calls through the real Handler and Runner (DIALER=sip:
//     the SIP dialer, CreateSIPParticipant, the same trunk), the daemon's
//     recorder (Ogg Opus to the devstack's MinIO), and the realtime
//     simulator paced in real time with a fixed think time. The phone
//     answers a greeting, takes sipLegReplyRounds turns (a 500 ms tone,
//     then the agent's 500 ms reply), then talks over sipLegBargeRounds
//     long replies sipLegBargeAfter into each. Each call dials a number of
//     its own (numberingDialer) and its recorder is tapped (legTap), so
//     the phone's stamps and the worker's pair up.
//
// Once before the levels, BenchmarkCallLatency's WebRTC-only floor (the
// callee simulator in the room instead of the SIP leg) runs for
// comparison. Figures per level (b.ReportMetric), each as the phone
// measured it unless said:
//
//	floor-p50/p95-ms     the tone's first packet sent to the first loud
//	                     packet of it heard back: the whole round trip, the
//	                     echo's own queue (its Player) included
//	floor-in/-out-…      its legs: phone → the echo hearing it, and the
//	                     echo's Player sending it → the phone hearing it
//	floor-legs-…         in + out tone by tone: the SIP leg and LiveKit
//	                     alone, the floor the worker is held against
//	reply-p50/p95-ms     the phone's line ending (its last packet's 20 ms
//	                     sent) to the agent's first loud packet heard. It
//	                     includes the model's fixed time, sipLegFixed: the
//	                     VAD's silence window (500 ms, the API default, set
//	                     explicitly) and the simulator's think time (200 ms)
//	added-p50/p95-ms     (reply − sipLegFixed) − floor-legs, each at that
//	                     percentile: what the worker adds over the leg
//	                     (target: p95 ≤ 25 ms)
//	reply-in/-worker/-out-…  each reply split at the worker by the tap:
//	                     the line's last loud packet sent → arrived at the
//	                     worker; → the reply's first loud packet due on the
//	                     agent's pacer, less sipLegFixed (the simulator's
//	                     VAD frame grid, up to 20 ms, the websocket hops,
//	                     the pacer's next frame, the worker); → heard. Late
//	                     pacing shows in -out, which counts from the due time
//	worker-p50/p95-ms    the worker's own reply latency (the call
//	                     document's latencies_ms, speech_stopped received to
//	                     first reply audio queued) less the think time
//	barge-in-p50/p95-ms  the first packet of the phone's line spoken over
//	                     the agent to the agent's last loud packet heard
//	                     (its 20 ms then plays): all-in (target: p95 ≤
//	                     150 ms); barge-in-react is the line's first loud
//	                     packet at the worker → the agent's last loud packet
//	                     due (the model VAD's 60 ms of speech, the
//	                     websocket, the clear), barge-in-out that packet →
//	                     heard
//	sip-cpu-ms-per-call-minute  livekit-sip's CPU time (utime+stime from
//	                     /proc/<pid>/stat) over the worker phase, over the
//	                     phone's call-minutes (answer to BYE); its idle work
//	                     is in it (sip-idle-cpu-ms-per-s says how much, to
//	                     the 10 ms tick)
//	sip-rss-MiB-per-call livekit-sip's peak RSS during the worker phase
//	                     less its RSS before the level, over N (Go keeps
//	                     freed memory, so a later level starts higher)
//	sfu-cpu-ms-per-call-minute  the same for livekit-server
//	loadavg-1m           the machine's 1-minute load when the level ended
//
// Nothing is subtracted but sipLegFixed, and only where a name says so.
// Everything runs in this process but the servers: the phone, the echo
// and the simulator share the worker's CPU, so their stamps carry its
// scheduling delays as a real phone's would not; a shared machine shows in
// loadavg-1m. A tone a starved echo returns after the next one is counted,
// not measured; so are lines that find the agent quiet, or that the phone
// hung up on.
//
//	make bench
//	devstack exec -- go test -run '^$' -bench SIPLeg -benchtime 1x -timeout 20m ./internal/call/

const (
	sipLegLevelsEnv   = "SIP_LEG_LEVELS"
	sipLegLevels      = "1,10"
	sipLegStagger     = 150 * time.Millisecond
	sipLegDelayMS     = 200 // the simulated model's think time
	sipLegSilenceMS   = 500 // the model's VAD silence window (the API default)
	sipLegFixed       = (sipLegDelayMS + sipLegSilenceMS) * time.Millisecond
	sipLegMinSpeech   = 60 * time.Millisecond // the simulator's VAD: speech this long starts a turn (its default)
	sipLegReplyRounds = 6
	sipLegBargeRounds = 4
	sipLegBargeAfter  = 800 * time.Millisecond
	sipLegEchoRounds  = 12
	sipLegTimeout     = 5 * time.Minute
	sipLegSample      = 200 * time.Millisecond
	sipLegReplyMS     = 500
	sipLegLongMS      = 4000
)

func BenchmarkSIPLeg(b *testing.B) {
	levels := parseLevels(b, sipLegLevelsEnv, sipLegLevels)
	e := newSIPLegEnv(b)
	// Today's WebRTC-only media floor, for comparison: the callee
	// simulator in the room instead of the SIP leg (BenchmarkCallLatency's).
	webrtc := echoRoundTrip(b)
	var results []sipLegResult
	for _, n := range levels {
		b.Run("calls="+strconv.Itoa(n), func(b *testing.B) {
			var r sipLegResult
			for range b.N {
				r = e.runLevel(b, n)
			}
			r.report(b)
			results = append(results, r)
		})
	}
	b.Run("summary", func(b *testing.B) {
		b.ReportMetric(0, "ns/op")
		logSIPLegTable(b, results, webrtc)
	})
}

// parseLevels reads a comma-separated list of call counts from env.
func parseLevels(b *testing.B, env, def string) []int {
	spec := os.Getenv(env)
	if spec == "" {
		spec = def
	}
	var out []int
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 200 {
			b.Fatalf("%s=%q: want comma-separated call counts between 1 and 200", env, spec)
		}
		out = append(out, n)
	}
	return out
}

// sipLegEnv is what the levels share: the store, the recorder, and the
// stack's servers whose cost is measured.
type sipLegEnv struct {
	st     *store.Store
	recs   call.RecorderFactory
	log    *zap.Logger
	prefix string
	seq    int
	sip    stackServer // livekit-sip
	sfu    stackServer // livekit-server
}

func newSIPLegEnv(b *testing.B) *sipLegEnv {
	b.Helper()
	log := zap.NewNop()
	st := openStore(b)
	e := &sipLegEnv{st: st, log: log, recs: startRecordings(b, minioClient(b, ""), st, 0, log).Factory()}
	name := testenv.UniqueName(b)
	e.prefix = name[len(name)-8:]
	procs := stackServers(b)
	var ok bool
	if e.sip, ok = procs["livekit-sip"]; !ok {
		b.Fatal("no livekit-sip among the stack's processes: run under devstack (make bench)")
	}
	if e.sfu, ok = procs["server"]; !ok {
		b.Fatal("no livekit-server among the stack's processes")
	}
	return e
}

// sipLegResult is one level's figures.
type sipLegResult struct {
	n                       int
	failures                []string
	floorCalls, workerCalls []*sipphone.Call
	// The floor's round trips, and their legs: phone → echo, inside the
	// echo (heard → played), echo → phone.
	floor, floorIn, echoWait, floorOut []time.Duration
	floorLegs                          []time.Duration // floorIn + floorOut, tone by tone: the leg alone
	floorLost                          int             // tones not heard back before the next
	reply                              []time.Duration // as heard, the fixed time included
	// reply split at the worker: the leg in (to the line's last loud
	// packet at the worker), the worker and the model less sipLegFixed,
	// the leg out (the reply's first loud packet sent → heard).
	replyIn, replyWorker, replyOut []time.Duration
	// bargeIn split: the leg in (the line's first loud packet at the
	// worker), the reaction (→ the agent's last loud packet sent: the
	// model's VAD, the websocket, the worker's clear), the leg out.
	bargeInLeg, bargeReact, bargeOut []time.Duration
	worker                           []time.Duration // the worker's own, think time excluded
	bargeIn                          []time.Duration
	missed                           int // barge-ins with no agent speech to cut
	noReply                          int // lines with no reply heard before the phone hung up
	// livekit-sip and livekit-server during the worker phase.
	sipCPUPerCallMin, sfuCPUPerCallMin time.Duration
	sipIdleEachSecond                  time.Duration
	sipRSSPerCall                      float64 // MiB
	floorSIPCPUPerCallMin              time.Duration
	loadavg                            float64
}

func (r *sipLegResult) fail(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

// runLevel runs the floor, then the worker, with n calls each.
func (e *sipLegEnv) runLevel(b *testing.B, n int) sipLegResult {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sipLegTimeout)
	defer cancel()
	line := siptest.Start(b, sipphone.Config{Default: sipLegWorkerScript(), KeepAudio: time.Second, Logger: e.log})
	for i := range n {
		require.NoError(b, line.Phone.Handle(sipLegFloorNumber(i), sipLegEchoScript()))
	}
	tcfg := line.Telephony(b)
	tcfg.CallerID, tcfg.RingTimeout = callerID, 20*time.Second
	tcfg.MaxCallDuration = call.DefaultMaxDuration + 2*time.Minute
	dialer, err := telephony.NewSIPDialer(tcfg)
	require.NoError(b, err)
	rooms, err := telephony.NewRooms(tcfg, e.log)
	require.NoError(b, err)

	r := sipLegResult{n: n}
	idle := e.sip.usage(b)
	time.Sleep(time.Second) // a quiet second: livekit-sip's idle work
	before := e.sip.usage(b)
	r.sipIdleEachSecond = time.Duration(float64(before.cpu-idle.cpu) / before.at.Sub(idle.at).Seconds())

	floorSIP := e.sip.watch()
	e.runFloor(ctx, &r, line, tcfg, dialer, rooms)
	r.floorSIPCPUPerCallMin = perCallMinute(floorSIP().cpu, r.floorCalls)

	sipUse, sfuUse := e.sip.watch(), e.sfu.watch()
	e.runWorker(ctx, b, &r, line, tcfg, dialer)
	su, fu := sipUse(), sfuUse()
	r.sipCPUPerCallMin, r.sfuCPUPerCallMin = perCallMinute(su.cpu, r.workerCalls), perCallMinute(fu.cpu, r.workerCalls)
	r.sipRSSPerCall = float64(su.peakRSS-before.rss) / float64(n) / (1 << 20)
	if len(r.floorCalls) != n || len(r.workerCalls) != n {
		r.fail("measured %d floor calls and %d worker calls, want %d each", len(r.floorCalls), len(r.workerCalls), n)
	}
	r.loadavg = loadAverage()
	return r
}

// sipLegEchoScript is the phone on a floor call: after a second for the
// echo to subscribe, a 300 ms tone every second.
func sipLegEchoScript() sipphone.Script {
	steps := []sipphone.Step{sipphone.Pause(time.Second)}
	for range sipLegEchoRounds {
		steps = append(steps, sipphone.Say(phoneTone(300*time.Millisecond)), sipphone.Pause(700*time.Millisecond))
	}
	return sipphone.Script{Steps: append(steps, sipphone.HangUp())}
}

// sipLegWorkerScript is the phone on a worker call: the greeting, turns
// of a 500 ms line and a short reply, then a line that draws a long reply
// and sipLegBargeRounds lines each spoken over a long reply; the last
// draws a short one, and the phone hangs up after it.
func sipLegWorkerScript() sipphone.Script {
	line := phoneTone(500 * time.Millisecond)
	steps := []sipphone.Step{sipphone.WaitForAgentTurn()}
	for range sipLegReplyRounds {
		steps = append(steps, sipphone.Say(line), sipphone.WaitForAgentTurn())
	}
	steps = append(steps, sipphone.Say(line))
	for range sipLegBargeRounds {
		steps = append(steps, sipphone.WaitForAgentSpeech(), sipphone.Pause(sipLegBargeAfter), sipphone.Say(line))
	}
	steps = append(steps, sipphone.WaitForAgentTurn(), sipphone.HangUp())
	return sipphone.Script{AgentQuiet: 400 * time.Millisecond, Steps: steps}
}

// sipLegModel is the simulated model's side of sipLegWorkerScript.
func sipLegModel() realtimesim.Script {
	short := realtimesim.AgentTurn{Text: "I see.", AudioMS: sipLegReplyMS}
	long := realtimesim.AgentTurn{Text: "Let me explain that at some length.", AudioMS: sipLegLongMS}
	turns := []realtimesim.AgentTurn{{Text: "Hello, this is Ava from DocShield.", AudioMS: 800}}
	for range sipLegReplyRounds {
		turns = append(turns, short)
	}
	for range sipLegBargeRounds {
		turns = append(turns, long)
	}
	// The last barge-in's reply, and spares: a line the VAD split must
	// not leave a response empty.
	for range 4 {
		turns = append(turns, short)
	}
	return realtimesim.Script{Agent: turns, ResponseDelayMS: sipLegDelayMS, Paced: true,
		VAD: realtimesim.VAD{MinSpeechMS: int(sipLegMinSpeech / time.Millisecond)}}
}

// runFloor places n echo calls, sipLegStagger apart, each to a number
// of its own (so the phone's call and the echo pair up), and measures
// each at the phone and at the echo.
func (e *sipLegEnv) runFloor(ctx context.Context, r *sipLegResult, line siptest.Line, tcfg telephony.Config,
	dialer *telephony.SIPDialer, rooms *telephony.Rooms) {
	var mu sync.Mutex
	e.concurrently(ctx, r.n, func(i int, id string) {
		number := sipLegFloorNumber(i)
		ec, err := echoCall(ctx, tcfg, dialer, rooms, id, number)
		var c *sipphone.Call
		if err == nil {
			c, err = endedCall(ctx, line, number)
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			r.fail("floor %s: %v", id, err)
			return
		}
		r.floorCalls = append(r.floorCalls, c)
		r.echoed(c, ec)
	})
}

// endedCall waits for the phone's call to number to end.
func endedCall(ctx context.Context, line siptest.Line, number string) (*sipphone.Call, error) {
	c, err := line.Phone.WaitCall(ctx, number)
	if err != nil {
		return nil, err
	}
	select {
	case <-c.Done():
		return c, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("the phone's call to %s did not end: %w", number, ctx.Err())
	}
}

// sipLegFloorNumber is the number the floor's call i dials (fictional,
// 555-01xx); the worker's calls go to calleePhone.
func sipLegFloorNumber(i int) string { return fmt.Sprintf("+1555010%04d", 2000+i) }

// echoed measures a floor call: each tone the phone said to the first
// loud packet of it heard back (before the next tone), and its legs: the
// phone to the echo hearing it, the wait in the echo, the echo playing
// it to the phone hearing it.
func (r *sipLegResult) echoed(c *sipphone.Call, ec *echo) {
	said := c.Record().Said
	spans := c.Heard().Spans(100 * time.Millisecond)
	for i, u := range said {
		s, ok := firstHeardAfter(spans, u.Start)
		if !ok || (i+1 < len(said) && s.Start.After(said[i+1].Start)) {
			r.floorLost++ // not back before the next tone: a starved echo
			continue
		}
		r.floor = append(r.floor, s.Start.Sub(u.Start))
		if on, ok := ec.onsetAfter(u.Start); ok && !on.sent.IsZero() && on.sent.Before(s.Start) {
			r.floorIn = append(r.floorIn, on.arrived.Sub(u.Start))
			r.floorLegs = append(r.floorLegs, on.arrived.Sub(u.Start)+s.Start.Sub(on.sent))
			r.echoWait = append(r.echoWait, on.sent.Sub(on.arrived))
			r.floorOut = append(r.floorOut, s.Start.Sub(on.sent))
		}
	}
}

// concurrently runs f for n fresh attempt ids, started sipLegStagger
// apart, and waits for all.
func (e *sipLegEnv) concurrently(ctx context.Context, n int, f func(i int, id string)) {
	var wg sync.WaitGroup
	for i := range n {
		e.seq++
		id := fmt.Sprintf("sip-%s-%05d", e.prefix, e.seq)
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTimer(time.Duration(i) * sipLegStagger)
			defer t.Stop()
			select {
			case <-t.C:
				f(i, id)
			case <-ctx.Done():
			}
		}()
	}
	wg.Wait()
}

// echoCall is one floor call: a room with an echo in it, and the phone
// dialled in at number through the SIP service, until the phone hangs up.
// It returns the echo, which noted when each loud onset arrived and went
// back out.
func echoCall(ctx context.Context, tcfg telephony.Config, dialer *telephony.SIPDialer, rooms *telephony.Rooms, id, number string) (*echo, error) {
	room, err := rooms.Create(ctx, id)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rooms.Delete(context.Background(), room) }()
	ec := &echo{sent: map[string]time.Time{}}
	seat, err := telephony.Join(ctx, tcfg, room, telephony.ParticipantOptions{
		Identity: telephony.AgentIdentity, OnPeerAudio: ec.heard,
		Player: telephony.PlayerOptions{OnPlayback: ec.played},
	})
	if err != nil {
		return nil, err
	}
	defer seat.Close()
	ec.player.Store(seat.Player())
	leg, err := dialer.Dial(ctx, telephony.DialRequest{AttemptID: id, Room: room, To: number})
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	if err := seat.SetPeer(leg.Identity); err != nil {
		return nil, err
	}
	// The phone hangs up at the end of its script: the callee leaves.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		in, err := rooms.HasParticipant(ctx, room, leg.Identity)
		if err == nil && !in {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil, fmt.Errorf("the phone never hung up: %w", ctx.Err())
		}
	}
	return ec, nil
}

// runWorker places n calls through the Handler and the Runner, as the
// worker does with DIALER=sip.
func (e *sipLegEnv) runWorker(ctx context.Context, b *testing.B, r *sipLegResult, line siptest.Line, tcfg telephony.Config, dialer *telephony.SIPDialer) {
	b.Helper()
	sim := realtimesim.New(sipLegModel())
	base, err := sim.Start("127.0.0.1:0")
	require.NoError(b, err)
	defer func() { require.NoError(b, sim.Close()) }()
	rooms, err := telephony.NewRooms(tcfg, e.log)
	require.NoError(b, err)
	tap := newLegTap(e.recs)
	numbered := &numberingDialer{Dialer: dialer, numbers: map[string]string{}}
	runner, err := call.NewRunner(call.Options{
		Store: e.st, Rooms: rooms, Dialer: numbered, Telephony: tcfg,
		Realtime: realtime.Config{BaseURL: base, APIKey: realtimesim.DefaultAPIKey, Model: realtime.DefaultModel,
			VAD: realtime.VAD{SilenceDurationMS: sipLegSilenceMS}},
		Prompts: call.StorePrompts(e.st), Analyze: &enqueuer{}, Recordings: tap.factory, Logger: e.log,
	})
	require.NoError(b, err)
	h := &call.Handler{Calls: e.st, Runner: runner, Owner: "sip-leg-bench", Lease: call.DefaultLease}
	var mu sync.Mutex
	e.concurrently(ctx, r.n, func(i int, id string) {
		number := sipLegWorkerNumber(i)
		numbered.assign(id, number)
		tk := task(b, tasks.CallOutbound{Inline: &tasks.InlineCall{
			AttemptID: id, Phone: calleePhone, Instructions: instructions,
			Variables: map[string]string{"practice_name": "Elm Dental"},
		}})
		err := h.ProcessTask(ctx, tk)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			r.fail("%s: task: %v", id, err)
			return
		}
		c, err := e.st.GetCall(context.Background(), id)
		if err != nil {
			r.fail("%s: %v", id, err)
			return
		}
		if c.Status != store.CallCompleted {
			r.fail("%s: ended %s", id, c.Status)
		}
		for _, ms := range c.LatenciesMS {
			r.worker = append(r.worker, time.Duration(ms-sipLegDelayMS)*time.Millisecond)
		}
		mu.Unlock()
		pc, err := endedCall(ctx, line, number)
		mu.Lock()
		if err != nil {
			r.fail("%s: the phone's call: %v", id, err)
			return
		}
		r.workerCalls = append(r.workerCalls, pc)
		r.phoneHeard(pc, tap.call(id))
	})
}

// sipLegWorkerNumber is the number the worker's call i dials (the Runner
// asks for calleePhone; numberingDialer puts this one on the INVITE).
func sipLegWorkerNumber(i int) string { return fmt.Sprintf("+1555010%04d", 5000+i) }

// phoneHeard measures one worker call at the phone: each line's end to
// the next agent speech heard, and for a line spoken over the agent, its
// start to the end of that speech. With the tap's stamps (tc, nil if the
// call was never recorded) each is split at the worker: the leg in (the
// phone sent → the worker got it), the worker and the model (got → the
// agent's audio sent), the leg out (sent → the phone heard it).
func (r *sipLegResult) phoneHeard(c *sipphone.Call, tc *tappedCall) {
	rec := c.Record()
	replies := c.Heard().Spans(speechHangover)
	stretches := c.Heard().Spans(100 * time.Millisecond)
	var callee, agent []time.Time
	if tc != nil {
		callee, agent = tc.loud()
	}
	for i, u := range rec.Said {
		lastSent := u.End.Add(-telephony.FrameDuration) // the line's last packet went out
		if s, ok := firstHeardAfter(replies, u.End); ok {
			r.reply = append(r.reply, s.Start.Sub(u.End))
			// The line's last loud packet at the worker, then the reply's
			// first loud packet sent.
			got, ok1 := lastIn(callee, u.Start, s.Start)
			sent, ok2 := firstIn(agent, got, s.Start)
			if ok1 && ok2 {
				r.replyIn = append(r.replyIn, got.Sub(lastSent))
				r.replyWorker = append(r.replyWorker, sent.Sub(got)-sipLegFixed)
				r.replyOut = append(r.replyOut, s.Start.Sub(sent))
			}
		} else {
			// The phone hung up first: the agent's cut-off speech ran on
			// long enough to look like the reply it waited for.
			r.noReply++
		}
		if i <= sipLegReplyRounds {
			continue // the agent was not talking
		}
		cut := false
		for _, s := range stretches {
			if !s.Start.Before(u.Start) || s.End.Before(u.Start) {
				continue
			}
			r.bargeIn = append(r.bargeIn, s.End.Sub(u.Start))
			cut = true
			// The line's first loud packet at the worker, and the agent's
			// last loud packet sent before the phone stopped hearing it.
			got, ok1 := firstIn(callee, u.Start, s.End)
			sent, ok2 := lastIn(agent, s.Start.Add(-time.Second), s.End)
			if ok1 && ok2 && !sent.Before(got) {
				r.bargeInLeg = append(r.bargeInLeg, got.Sub(u.Start))
				r.bargeReact = append(r.bargeReact, sent.Sub(got))
				r.bargeOut = append(r.bargeOut, s.End.Sub(sent))
			}
			break
		}
		if !cut {
			r.missed++
		}
	}
}

// firstIn is the first of times (in order) after from and before to.
func firstIn(times []time.Time, from, to time.Time) (time.Time, bool) {
	for _, t := range times {
		if t.After(from) && t.Before(to) {
			return t, true
		}
	}
	return time.Time{}, false
}

// lastIn is the last of times (in order) after from and before to.
func lastIn(times []time.Time, from, to time.Time) (time.Time, bool) {
	for i := len(times) - 1; i >= 0; i-- {
		if t := times[i]; t.After(from) && t.Before(to) {
			return t, true
		}
	}
	return time.Time{}, false
}

func firstHeardAfter(spans []sipphone.Span, t time.Time) (sipphone.Span, bool) {
	for _, s := range spans {
		if s.Start.After(t) {
			return s, true
		}
	}
	return sipphone.Span{}, false
}

// perCallMinute is cpu over the calls' minutes on the line (answer to
// end, as the phone saw them).
func perCallMinute(cpu time.Duration, calls []*sipphone.Call) time.Duration {
	var minutes float64
	for _, c := range calls {
		r := c.Record()
		minutes += r.Ended.Sub(r.Answered).Minutes()
	}
	if minutes == 0 {
		return 0
	}
	return time.Duration(float64(cpu) / minutes)
}

func (r sipLegResult) report(b *testing.B) {
	b.ReportMetric(0, "ns/op") // an op is a level of calls; its time says nothing
	metric := func(name string, ds []time.Duration) {
		if len(ds) == 0 {
			return
		}
		b.ReportMetric(millis(percentile(ds, 50)), name+"-p50-ms")
		b.ReportMetric(millis(percentile(ds, 95)), name+"-p95-ms")
	}
	metric("floor", r.floor)
	metric("reply", r.reply)
	metric("worker", r.worker)
	metric("barge-in", r.bargeIn)
	if a50, a95, ok := r.added(); ok {
		b.ReportMetric(millis(a50), "added-p50-ms")
		b.ReportMetric(millis(a95), "added-p95-ms")
	}
	b.ReportMetric(millis(r.sipCPUPerCallMin), "sip-cpu-ms-per-call-minute")
	b.ReportMetric(millis(r.sfuCPUPerCallMin), "sfu-cpu-ms-per-call-minute")
	b.ReportMetric(millis(r.sipIdleEachSecond), "sip-idle-cpu-ms-per-s")
	b.ReportMetric(r.sipRSSPerCall, "sip-rss-MiB-per-call")
	b.ReportMetric(r.loadavg, "loadavg-1m")
	metric("floor-in", r.floorIn)
	metric("floor-out", r.floorOut)
	metric("floor-legs", r.floorLegs)
	b.Logf("%d calls: floor %s = phone→echo %s + in the echo %s + echo→phone %s; the legs alone %s; %d tones not back before the next",
		r.n, pcts(r.floor), pcts(r.floorIn), pcts(r.echoWait), pcts(r.floorOut), pcts(r.floorLegs), r.floorLost)
	b.Logf("%d calls: reply %s (of which %s is the model's fixed time; %d lines unanswered when the phone hung up); worker alone %s; barge-in %s (%d lines found the agent quiet)",
		r.n, pcts(r.reply), sipLegFixed, r.noReply, pcts(r.worker), pcts(r.bargeIn), r.missed)
	metric("reply-in", r.replyIn)
	metric("reply-worker", r.replyWorker)
	metric("reply-out", r.replyOut)
	metric("barge-in-react", r.bargeReact)
	metric("barge-in-out", r.bargeOut)
	b.Logf("%d calls: reply split at the worker: leg in %s + the worker and the model less its fixed %s: %s + leg out (from the pacer's due time) %s",
		r.n, pcts(r.replyIn), sipLegFixed, pcts(r.replyWorker), pcts(r.replyOut))
	b.Logf("%d calls: barge-in split at the worker: leg in %s + reaction (the model's %s of speech, websocket, clear) %s + leg out %s",
		r.n, pcts(r.bargeInLeg), sipLegMinSpeech, pcts(r.bargeReact), pcts(r.bargeOut))
	b.Logf("%d calls: livekit-sip %.0f ms CPU per call-minute on the floor's calls, %.0f on the worker's (idle: %.1f ms/s), %.2f MiB RSS per call; livekit-server %.0f ms CPU per call-minute; load %.2f",
		r.n, millis(r.floorSIPCPUPerCallMin), millis(r.sipCPUPerCallMin), millis(r.sipIdleEachSecond), r.sipRSSPerCall, millis(r.sfuCPUPerCallMin), r.loadavg)
	for i, f := range r.failures {
		if i == 10 {
			b.Logf("... and %d more failures", len(r.failures)-i)
			break
		}
		b.Logf("failed: %s", f)
	}
	if len(r.failures) > 0 {
		b.Errorf("%d of the level's checks failed", len(r.failures))
	}
}

// added is the worker's reply latency less the model's fixed time, over
// the floor's legs (the echo's own queue left out, as BenchmarkCallLatency
// leaves it out), at p50 and p95.
func (r sipLegResult) added() (p50, p95 time.Duration, ok bool) {
	if len(r.reply) == 0 || len(r.floorLegs) == 0 {
		return 0, 0, false
	}
	return percentile(r.reply, 50) - sipLegFixed - percentile(r.floorLegs, 50),
		percentile(r.reply, 95) - sipLegFixed - percentile(r.floorLegs, 95), true
}

func pcts(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	return fmt.Sprintf("p50 %s p95 %s (n=%d)", percentile(ds, 50).Round(time.Millisecond), percentile(ds, 95).Round(time.Millisecond), len(ds))
}

// logSIPLegTable prints the levels side by side against the targets.
func logSIPLegTable(b *testing.B, rs []sipLegResult, webrtc time.Duration) {
	if len(rs) == 0 {
		return
	}
	p := func(ds []time.Duration, q int) string {
		if len(ds) == 0 {
			return "-"
		}
		return strconv.FormatFloat(millis(percentile(ds, q)), 'f', 0, 64)
	}
	b.Logf("SIP leg, as the phone heard it (ms; reply includes the model's fixed %s; floor = the echo's legs, its queue left out; added = reply − fixed − floor at the same percentile; worker = the split at the worker)", sipLegFixed)
	b.Logf("%5s %9s %9s %9s %9s %9s %9s %10s %10s %10s %10s %9s %9s %8s %6s", "calls", "floor p50", "floor p95", "reply p50", "reply p95",
		"added p50", "added p95", "worker p50", "worker p95", "barge p50", "barge p95", "sip ms/cm", "sip MiB/c", "load 1m", "failed")
	for _, r := range rs {
		a50, a95, _ := r.added()
		b.Logf("%5d %9s %9s %9s %9s %9.0f %9.0f %10s %10s %10s %10s %9.0f %9.2f %8.2f %6d", r.n, p(r.floorLegs, 50), p(r.floorLegs, 95),
			p(r.reply, 50), p(r.reply, 95), millis(a50), millis(a95), p(r.replyWorker, 50), p(r.replyWorker, 95),
			p(r.bargeIn, 50), p(r.bargeIn, 95), millis(r.sipCPUPerCallMin), r.sipRSSPerCall, r.loadavg, len(r.failures))
	}
	for _, r := range rs {
		if len(r.floorIn) > 0 {
			b.Logf("%d calls: the SIP leg's media round trip (phone→echo + echo→phone, p50) %s against WebRTC-only %s (callee simulator ↔ echo, p50, same legs)",
				r.n, (percentile(r.floorIn, 50) + percentile(r.floorOut, 50)).Round(time.Millisecond), webrtc.Round(time.Millisecond))
		}
	}
	b.Logf("targets: added p95 ≤ 25 ms; barge-in p95 ≤ 150 ms")
}
