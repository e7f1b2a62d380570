package call

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/realtime"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/livekit/protocol/livekit"
	"go.uber.org/zap"
)

// Fakes for the call's loop, for tests inside a testing/synctest bubble:
// time.Now, timers and tickers there run on a fake clock that jumps ahead
// whenever every goroutine of the bubble is blocked, so a ten-minute call
// takes milliseconds and nothing depends on how busy the machine is.

// fakeSession is a model session the test scripts: it records what the
// loop asks of the model, and the test emits the model's events.
type fakeSession struct {
	events chan realtime.Event

	mu        sync.Mutex
	responses []string // instructions of each CreateResponse ("" for a plain reply)
	cancels   int
	outputs   map[string]string // tool call id → output
	truncated []realtime.Truncation
	received  map[string]int // item → samples delivered as AudioDelta
	played    map[string]int // item → samples reported played
	inSamples int64
	err       error
	closed    bool
}

func newFakeSession() *fakeSession {
	return &fakeSession{
		events:   make(chan realtime.Event, 64),
		outputs:  map[string]string{},
		received: map[string]int{},
		played:   map[string]int{},
	}
}

func (s *fakeSession) Events() <-chan realtime.Event { return s.events }

func (s *fakeSession) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *fakeSession) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *fakeSession) SendAudio(pcm []int16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inSamples += int64(len(pcm))
	return nil
}

func (s *fakeSession) CreateResponse(instructions string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.responses = append(s.responses, instructions)
	return nil
}

func (s *fakeSession) CancelResponse() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancels++
	return nil
}

func (s *fakeSession) SendToolOutput(callID, output string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outputs[callID] = output
	return nil
}

func (s *fakeSession) Interrupt(itemID string) (realtime.Truncation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if itemID == "" || s.played[itemID] >= s.received[itemID] {
		return realtime.Truncation{}, nil
	}
	tr := realtime.Truncation{ItemID: itemID, PlayedMS: realtime.SamplesToMS(s.played[itemID]),
		ReceivedMS: realtime.SamplesToMS(s.received[itemID])}
	s.truncated = append(s.truncated, tr)
	return tr, nil
}

func (s *fakeSession) AssistantAudio(itemID ...string) realtime.AssistantAudio {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(itemID) == 0 {
		return realtime.AssistantAudio{}
	}
	id := itemID[0]
	return realtime.AssistantAudio{ItemID: id, ResponseID: responseOf(id),
		ReceivedMS: realtime.SamplesToMS(s.received[id]), PlayedMS: realtime.SamplesToMS(s.played[id])}
}

func (s *fakeSession) MarkPlayed(itemID string, samples int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.played[itemID] += samples
}

func (s *fakeSession) Stats() realtime.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return realtime.Stats{InputSamples: s.inSamples}
}

// emit delivers a model event to the loop.
func (s *fakeSession) emit(evs ...realtime.Event) {
	for _, ev := range evs {
		if d, ok := ev.(realtime.AudioDelta); ok {
			s.mu.Lock()
			s.received[d.ItemID] += len(d.PCM)
			s.mu.Unlock()
		}
		s.events <- ev
	}
}

// end closes the session under the loop, as a dropped socket does.
func (s *fakeSession) end(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
	close(s.events)
}

func (s *fakeSession) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.responses)
}

func (s *fakeSession) output(callID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outputs[callID]
}

// The fakes name a response's item "<response>/item", so either can be
// found from the other.
func itemOf(response string) string { return response + "/item" }

func responseOf(item string) string { return strings.TrimSuffix(item, "/item") }

// reply is the events of one whole spoken response of d audio.
func reply(id string, d time.Duration) []realtime.Event {
	item := itemOf(id)
	return []realtime.Event{
		realtime.ResponseCreated{Response: realtime.Response{ID: id}},
		realtime.AudioDelta{ResponseID: id, ItemID: item, PCM: make([]int16, durationSamples(d))},
		realtime.AudioDone{ResponseID: id, ItemID: item},
		realtime.ResponseDone{Response: realtime.Response{ID: id, Status: "completed"}},
	}
}

// toolReply is a response that only calls a tool.
func toolReply(id, callID, name, args string) []realtime.Event {
	return []realtime.Event{
		realtime.ResponseCreated{Response: realtime.Response{ID: id}},
		realtime.FunctionCall{ResponseID: id, ItemID: id + "/call", CallID: callID, Name: name, Arguments: args},
		realtime.ResponseDone{Response: realtime.Response{ID: id, Status: "completed"}},
	}
}

// fakePlayer plays written audio in (fake) real time, one item after the
// other, as telephony.Player does.
type fakePlayer struct {
	mu      sync.Mutex
	queue   []fakeChunk
	startAt time.Time // when the head of queue began playing
	played  map[string]time.Duration
	current string
	clears  []telephony.Cleared
	held    bool
	// firstSound is when audio first played after the last Release.
	releasedAt, firstSound time.Time
}

type fakeChunk struct {
	item string
	d    time.Duration
}

func newFakePlayer() *fakePlayer { return &fakePlayer{played: map[string]time.Duration{}} }

// advance plays what is due by now. Callers hold mu.
func (p *fakePlayer) advance(now time.Time) {
	if p.held {
		p.startAt = now // nothing plays while held
		return
	}
	if len(p.queue) > 0 && p.firstSound.IsZero() && !p.releasedAt.IsZero() {
		p.firstSound = p.startAt
	}
	for len(p.queue) > 0 {
		c := &p.queue[0]
		elapsed := now.Sub(p.startAt)
		p.current = c.item
		if elapsed < c.d {
			p.played[c.item] += elapsed
			c.d -= elapsed
			p.startAt = now
			return
		}
		p.played[c.item] += c.d
		p.startAt = p.startAt.Add(c.d)
		p.queue = p.queue[1:]
	}
}

func (p *fakePlayer) Write(item string, pcm []int16) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	p.advance(now)
	if len(p.queue) == 0 {
		p.startAt = now
	}
	p.queue = append(p.queue, fakeChunk{item, samplesDuration(len(pcm))})
	return nil
}

func (p *fakePlayer) Clear() telephony.Cleared {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advance(time.Now())
	c := telephony.Cleared{Item: p.current, Played: p.played[p.current]}
	for _, q := range p.queue {
		c.Dropped += q.d
	}
	p.queue = nil
	p.clears = append(p.clears, c)
	return c
}

func (p *fakePlayer) Played(item string) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advance(time.Now())
	d, ok := p.played[item]
	return d, ok
}

func (p *fakePlayer) Queued() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advance(time.Now())
	var d time.Duration
	for _, q := range p.queue {
		d += q.d
	}
	return d
}

func (p *fakePlayer) Hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advance(time.Now())
	p.held = true
}

func (p *fakePlayer) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	p.advance(now)
	p.held = false
	p.releasedAt, p.firstSound = now, time.Time{}
}

// heldAudio reports whether audio is queued and held back.
func (p *fakePlayer) heldAudio() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held && len(p.queue) > 0
}

// soundAfterRelease is when audio first played after the last Release.
func (p *fakePlayer) soundAfterRelease() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advance(time.Now())
	return p.firstSound
}

func (p *fakePlayer) cleared() []telephony.Cleared {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.clears)
}

// fakeLeg is the agent's seat as the loop sees it.
type fakeLeg struct {
	left, gone   chan struct{}
	mu           sync.Mutex
	reconnecting time.Time
	dtmf         string
}

func newFakeLeg() *fakeLeg { return &fakeLeg{left: make(chan struct{}), gone: make(chan struct{})} }

func (l *fakeLeg) PeerLeft() <-chan struct{}     { return l.left }
func (l *fakeLeg) Disconnected() <-chan struct{} { return l.gone }
func (l *fakeLeg) DisconnectReason() livekit.DisconnectReason {
	return livekit.DisconnectReason_ROOM_DELETED
}

func (l *fakeLeg) SendDTMF(keys string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dtmf += keys
	return nil
}

func (l *fakeLeg) pressed() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dtmf
}

func (l *fakeLeg) ReconnectingSince() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reconnecting
}

func (l *fakeLeg) setReconnecting(at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reconnecting = at
}

// memCalls is the call's store in memory: what the keeper wrote.
type memCalls struct {
	mu        sync.Mutex
	turns     []store.Turn
	tools     []store.ToolCall
	details   []store.CallDetails
	dnc       []string
	leases    int
	fenceLost bool
}

func (m *memCalls) check() error {
	if m.fenceLost {
		return store.ErrFenceMismatch
	}
	return nil
}

func (m *memCalls) Transition(context.Context, store.Claim, store.CallStatus, store.CallFields) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.check()
}

func (m *memCalls) AppendTurns(_ context.Context, _ store.Claim, ts ...store.Turn) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.turns = append(m.turns, ts...)
	return m.check()
}

func (m *memCalls) AppendToolCall(_ context.Context, _ store.Claim, tc store.ToolCall) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tools = append(m.tools, tc)
	return m.check()
}

func (m *memCalls) ExtendLease(context.Context, store.Claim, time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.leases++
	return m.check()
}

func (m *memCalls) RecordCallDetails(_ context.Context, _ store.Claim, d store.CallDetails) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.details = append(m.details, d)
	return m.check()
}

func (m *memCalls) EndCall(context.Context, store.Claim, store.EndRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.check()
}

func (m *memCalls) IsDoNotCall(_ context.Context, phone string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Contains(m.dnc, phone), nil
}

func (m *memCalls) AddDoNotCall(_ context.Context, d store.DoNotCall) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dnc = append(m.dnc, d.Phone)
	return nil
}

func (m *memCalls) loseFence() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fenceLost = true
}

func (m *memCalls) toolNames() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for _, t := range m.tools {
		names = append(names, t.Name)
	}
	return names
}

// fakeRooms answers whether the callee is in the room.
type fakeRooms struct {
	mu      sync.Mutex
	present bool
	err     error
	asked   int
	// leaveAfter > 0: the callee leaves after that many answers (a BYE
	// that reaches LiveKit late).
	leaveAfter int
}

func (r *fakeRooms) Create(context.Context, string) (string, error)  { return "room", nil }
func (r *fakeRooms) Hangup(context.Context, telephony.CallLeg) error { return nil }
func (r *fakeRooms) Delete(context.Context, string) error            { return nil }
func (r *fakeRooms) HasParticipant(context.Context, string, string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked++
	if r.leaveAfter > 0 && r.asked > r.leaveAfter {
		return false, nil
	}
	return r.present, r.err
}

// fakeDialer only transfers; the loop never dials.
type fakeDialer struct {
	mu          sync.Mutex
	transferErr error
	transfers   []string
}

func (d *fakeDialer) Dial(context.Context, telephony.DialRequest) (telephony.CallLeg, error) {
	panic("the call's loop does not dial")
}

func (d *fakeDialer) Transfer(_ context.Context, _ telephony.CallLeg, req telephony.TransferRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.transfers = append(d.transfers, req.To)
	return d.transferErr
}

// loop is one answered call's loop running on fakes.
type loop struct {
	sess   *fakeSession
	player *fakePlayer
	leg    *fakeLeg
	calls  *memCalls
	dialer *fakeDialer
	rooms  *fakeRooms
	media  *media
	a      *attempt
	cancel context.CancelFunc // the task's context: shutdown
	speech chan []int16       // audio the callee's line sends next, instead of silence
	done   chan ending
	exited chan struct{} // closed when the loop and its callee line stopped
}

// loopSetup adjusts a loop before it starts.
type loopSetup struct {
	prompt Prompt
	timers Timers
	// noCalleeAudio: the callee's leg sends nothing (by default it sends
	// 20 ms of silence every 20 ms, as a phone line does).
	noCalleeAudio bool
	// calleeGone: LiveKit says the callee is not in the room; presenceErr:
	// LiveKit cannot say.
	calleeGone  bool
	presenceErr error
	// calleeLeavesLate: LiveKit has the callee in the room (or cannot
	// say, with presenceErr) the first time it is asked, and not after.
	calleeLeavesLate bool
	// lease is the claim's (0: DefaultLease).
	lease time.Duration
}

// startLoop runs a call's loop on fakes; call it inside synctest.Test.
func startLoop(t *testing.T, setup loopSetup) *loop {
	t.Helper()
	p := setup.prompt
	if p.Instructions == "" {
		p.Instructions = "You are Ava."
	}
	if p.Phone == "" {
		p.Phone = "+442071838750"
	}
	s, err := render(p)
	if err != nil {
		t.Fatal(err)
	}
	timers := setup.timers
	if timers.Silence == 0 {
		timers.Silence = time.Hour // only silence tests hear silence out
	}
	l := &loop{
		sess: newFakeSession(), player: newFakePlayer(), leg: newFakeLeg(),
		calls: &memCalls{}, dialer: &fakeDialer{}, media: newMedia(LocalVAD{}),
		rooms: &fakeRooms{present: !setup.calleeGone, err: setup.presenceErr},
		done:  make(chan ending, 1), exited: make(chan struct{}), speech: make(chan []int16, 8),
	}
	if setup.calleeLeavesLate {
		l.rooms.leaveAfter = 1
	}
	r := &Runner{o: Options{Store: l.calls, Dialer: l.dialer, Rooms: l.rooms, Timers: timers.withDefaults(), Logger: zap.NewNop()}}
	claim := store.Claim{AttemptID: "attempt-1", Owner: "test", Fence: "fence", Lease: setup.lease}
	l.a = &attempt{r: r, claim: claim, doc: &store.Call{ID: claim.AttemptID}, log: zap.NewNop(),
		keep: newKeeper(l.calls, claim, zap.NewNop())}
	l.a.keep.start()
	l.media.setSession(l.sess)
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	parts := conversationParts{script: s, sess: l.sess, seat: l.leg, player: l.player, media: l.media,
		answered: time.Now(), silence: 500 * time.Millisecond}
	stopAudio := make(chan struct{})
	if !setup.noCalleeAudio {
		go l.calleeLine(stopAudio)
	}
	go func() {
		defer close(l.exited)
		end := l.a.converse(ctx, parts)
		l.a.keep.close()
		close(stopAudio)
		l.done <- end
	}()
	// Every goroutine of the bubble must be gone when the test ends: a
	// call still running is shut down, as the worker would.
	t.Cleanup(func() {
		cancel()
		<-l.exited
	})
	return l
}

// calleeLine sends the callee's side of the line: silence, every 20 ms,
// until the call ends or the leg goes down.
func (l *loop) calleeLine(stop <-chan struct{}) {
	t := time.NewTicker(tick)
	defer t.Stop()
	frame := durationSamples(tick)
	var pending []int16
	for {
		select {
		case <-stop:
			return
		case <-l.leg.gone:
			return
		case <-t.C:
			if !l.leg.ReconnectingSince().IsZero() {
				continue // no media while the connection is down
			}
			if len(pending) == 0 {
				select {
				case pending = <-l.speech:
				default:
				}
			}
			chunk := make([]int16, frame) // silence, unless there is more to say
			n := copy(chunk, pending)
			pending = pending[n:]
			l.media.calleeAudio(chunk)
		}
	}
}

// say has the callee's line send pcm, 20 ms a tick, after what it is
// already sending.
func (l *loop) say(pcm []int16) { l.speech <- pcm }

// wait returns how the call ended, failing the test if it runs past
// limit of fake time.
func (l *loop) wait(t *testing.T, limit time.Duration) ending {
	t.Helper()
	select {
	case end := <-l.done:
		return end
	case <-time.After(limit):
		t.Fatalf("the call did not end within %s", limit)
		return ending{}
	}
}

// running reports whether the loop is still going, once everything that
// can happen at this instant has happened.
func (l *loop) running() bool {
	select {
	case end := <-l.done:
		l.done <- end
		return false
	default:
		return true
	}
}
