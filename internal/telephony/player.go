package telephony

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	msdk "github.com/livekit/media-sdk"
	"github.com/livekit/media-sdk/opus"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
)

// FrameDuration is the audio sent per Opus packet. 20 ms is WebRTC's usual
// packet time; it is also the granularity of Clear.
const FrameDuration = 20 * time.Millisecond

// DefaultMaxQueue bounds how much unplayed audio a Player holds. The model
// sends speech faster than real time, but no single turn comes near this.
const DefaultMaxQueue = 2 * time.Minute

// maxLag is how far the pacer may fall behind its schedule (a stalled
// process) before it restarts the clock instead of bursting to catch up.
const maxLag = 100 * time.Millisecond

var (
	ErrPlayerClosed = errors.New("telephony: player is closed")
	ErrQueueFull    = errors.New("telephony: player queue is full")
)

// PlaybackEventKind says what happened to the agent's audio.
type PlaybackEventKind int

const (
	// PlaybackStarted: the first audio of an item was sent.
	PlaybackStarted PlaybackEventKind = iota + 1
	// PlaybackDrained: the queue ran empty; Item is the last item sent.
	PlaybackDrained
)

// PlaybackEvent reports playout progress, stamped when the frame was sent.
type PlaybackEvent struct {
	Kind   PlaybackEventKind
	Item   string
	At     time.Time
	Played time.Duration // of Item so far
}

// Cleared is what Clear discarded.
type Cleared struct {
	Item    string        // the item the callee was hearing ("" if none)
	Played  time.Duration // how much of Item was sent before the clear
	Dropped time.Duration // queued audio discarded, all items together
}

// PlayerOptions configure a Player.
type PlayerOptions struct {
	SampleRate int           // of the PCM written; 0: DefaultSampleRate
	MaxQueue   time.Duration // 0: DefaultMaxQueue
	// OnPlayback is called on the pacing goroutine, so it must return
	// quickly: time spent there delays the next frame of every player the
	// pacer serves.
	OnPlayback func(PlaybackEvent)
	// OnSent receives every Opus packet sent, silence included (for the
	// recording: exactly what the listener got), with when it was due on
	// the pacer's schedule. A frame a busy process sends late is still due
	// on the schedule (the pacer catches up, and the listener's jitter
	// buffer plays it in turn); after a stall past maxLag the schedule
	// restarts, and the listener does hear a gap. It runs on the pacing
	// goroutine, so it must return quickly; pkt is valid only during the
	// call.
	OnSent func(due time.Time, pkt []byte)
	Logger *zap.Logger
}

// Player is a participant's voice. PCM written in any chunk size waits in
// one queue and goes out as 20 ms Opus frames at real-time pace, silence
// when there is nothing to say. Because nothing downstream buffers, the
// queue is the only place unplayed audio waits: Clear stops the voice at
// once, and what was sent is what the listener hears a network hop later.
// (The SDK's PCMLocalTrack has ClearQueue but no way to tell how much of
// the audio it has sent, which a barge-in truncation needs.)
//
// Until Open is called (someone subscribed to the track) audio is held, so
// a greeting queued early is not spoken to an empty room.
//
// The players of a process share one pacer (see pacer).
type Player struct {
	// Immutable after construction.
	rate, frame int // samples per second, per frame
	maxQueued   int
	onEvent     func(PlaybackEvent)
	log         *zap.Logger
	track       *webrtc.TrackLocalStaticSample // nil in unit tests
	pacer       *pacer
	done        chan struct{} // closed by Close, once no frame can go out
	closeOnce   sync.Once

	// stepMu is held by the pacer while it sends a frame, and by Close to
	// wait out a frame on its way; the fields below are confined to it.
	stepMu     sync.Mutex
	sink       func(due time.Time, pcm []int16) error
	buf        []int16 // the frame being sent
	stopped    bool    // Close ran: send nothing more
	sinkFailed bool    // logged once: a broken track fails every frame

	// Written by the pacing goroutine, read by anyone (the admission's
	// audio health): frame slots due, and those that passed while the
	// pacer was more than maxLag behind (the gap the listener hears).
	frames, lateFrames atomic.Int64

	mu      sync.Mutex // guards the fields below
	queue   []chunk
	queued  int // samples in queue
	open    bool
	held    bool // Hold: queued audio waits, silence goes out
	closed  bool
	current string      // item of the last samples sent
	items   []itemState // recent items, oldest first
	drained chan struct{}
}

type chunk struct {
	item string
	pcm  []int16
}

type itemState struct {
	id     string
	played int // samples sent
}

// maxItems bounds the per-item bookkeeping; truncation only ever asks
// about the item playing now or the one before.
const maxItems = 16

// AgentOpusComplexity is the libopus complexity of the agent's track
// (CELT; see voiceEncoder). Encoding is the largest share of a call's CPU
// that is ours to choose, and the agent's voice ends up on the phone
// network as 8 kHz G.711 (or at best 16 kHz G.722), where what a higher
// complexity adds is inaudible: at 0, CELT skips its pitch pre-filter and
// its time-frequency search, and a frame costs 0.6 of what it costs at 1
// (BenchmarkVoiceEncoder), decoding as close to the source at 32 kbit/s.
const AgentOpusComplexity = 0

// newTrackPlayer returns a Player publishing on a new Opus track. Opus
// encodes the 24 kHz PCM natively, so no resampler sits in the path.
func newTrackPlayer(opts PlayerOptions) (*Player, error) {
	id := uuid.NewString()[:8]
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "voice-"+id, "voice-"+id)
	if err != nil {
		return nil, fmt.Errorf("telephony: audio track: %w", err)
	}
	rate := orDefault(opts.SampleRate, DefaultSampleRate)
	enc, err := newVoiceEncoder(msdk.FromSampleWriter[opus.Sample](track, rate, FrameDuration), rate, AgentOpusComplexity, opts.OnSent)
	if err != nil {
		return nil, err
	}
	p := makePlayer(opts, enc.write)
	p.track = track
	trackPacer.add(p)
	return p, nil
}

// newPlayer starts a Player writing frames to sink, on a pacer of its own.
func newPlayer(opts PlayerOptions, sink func(time.Time, []int16) error) *Player {
	p := makePlayer(opts, sink)
	newPacer().add(p)
	return p
}

// makePlayer builds a Player that no pacer serves yet.
func makePlayer(opts PlayerOptions, sink func(time.Time, []int16) error) *Player {
	rate := orDefault(opts.SampleRate, DefaultSampleRate)
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	drained := make(chan struct{})
	close(drained)
	frame := samplesIn(FrameDuration, rate)
	return &Player{
		rate:      rate,
		frame:     frame,
		maxQueued: samplesIn(orDefault(opts.MaxQueue, DefaultMaxQueue), rate),
		sink:      sink,
		buf:       make([]int16, frame),
		onEvent:   opts.OnPlayback,
		log:       log,
		done:      make(chan struct{}),
		drained:   drained,
	}
}

// SampleRate is the rate of the PCM Write expects.
func (p *Player) SampleRate() int { return p.rate }

// Write queues mono PCM for item (an id the caller chooses, such as the
// realtime model's item id). pcm is copied.
func (p *Player) Write(item string, pcm []int16) error {
	if len(pcm) == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrPlayerClosed
	}
	if p.queued+len(pcm) > p.maxQueued {
		return fmt.Errorf("%w: %s queued", ErrQueueFull, p.durationOf(p.queued))
	}
	if p.queued == 0 && isClosed(p.drained) {
		// A drain still waiting for its last frame to go out keeps its
		// channel: its waiters now wait for this audio too.
		p.drained = make(chan struct{})
	}
	p.queue = append(p.queue, chunk{item: item, pcm: append([]int16(nil), pcm...)})
	p.queued += len(pcm)
	p.item(item) // known from now on: Played reports 0 until it starts
	return nil
}

// Clear discards all queued audio at once (barge-in) and reports how much
// of the interrupted item had been sent.
func (p *Player) Clear() Cleared {
	p.mu.Lock()
	defer p.mu.Unlock()
	in := Cleared{Item: p.current, Dropped: p.durationOf(p.queued)}
	if in.Item == "" && len(p.queue) > 0 {
		in.Item = p.queue[0].item // nothing sent yet: the first item, at 0
	}
	if st := p.find(in.Item); st != nil {
		in.Played = p.durationOf(st.played)
	}
	p.queue, p.queued = nil, 0
	p.markDrained()
	return in
}

// Played returns how much of item has been sent; false if the item is
// unknown (never written, or too old to remember).
func (p *Player) Played(item string) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.find(item)
	if st == nil {
		return 0, false
	}
	return p.durationOf(st.played), true
}

// Queued returns how much audio is waiting to be sent.
func (p *Player) Queued() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.durationOf(p.queued)
}

// WaitDrained blocks until everything queued has been sent (or cleared).
func (p *Player) WaitDrained(ctx context.Context) error {
	p.mu.Lock()
	ch := p.drained
	p.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-p.done:
		return ErrPlayerClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Hold keeps queued audio from playing (silence goes out) until Release:
// a voicemail message waits for the machine's beep, ready to start the
// moment it ends.
func (p *Player) Hold() {
	p.mu.Lock()
	p.held = true
	p.mu.Unlock()
}

// Release lets held audio play from the next frame on.
func (p *Player) Release() {
	p.mu.Lock()
	p.held = false
	p.mu.Unlock()
}

// Open lets queued audio play: someone is listening now.
func (p *Player) Open() {
	p.mu.Lock()
	p.open = true
	p.mu.Unlock()
}

// Close stops the voice and discards what is queued. It is idempotent and
// returns once no frame of the player can go out any more.
func (p *Player) Close() {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.queue, p.queued = nil, 0
		p.mu.Unlock()
		p.pacer.remove(p)
		p.stepMu.Lock() // a frame on its way goes out first
		p.stopped = true
		p.stepMu.Unlock()
		close(p.done)
	})
	<-p.done
}

// pacer sends the frames of the players it serves, one frame per
// FrameDuration each, on an absolute schedule, so timer jitter does not
// accumulate into drift. Every track player of the process shares one
// (trackPacer): one goroutine and one timer wake-up per 20 ms for all the
// calls, where a goroutine per call woke on a timer of its own, 50 times a
// second each (waking the process's threads from idle is a share of a
// call's CPU that grows with the calls; the frames themselves cost the
// same either way). A frame of one player waits for those before it,
// so a player's sink and callbacks must return at once, as they do: the
// Opus encoder (16 µs), the RTP write to a UDP socket, and hand-offs that
// never block. The goroutine runs while the pacer has players, and ends
// when the last leaves.
type pacer struct {
	// kick wakes the goroutine when the last player left, so that it ends
	// with it.
	kick chan struct{}

	mu      sync.Mutex // guards the fields below
	players []*Player
	running bool // the goroutine runs; it clears this when it ends
}

func newPacer() *pacer { return &pacer{kick: make(chan struct{}, 1)} }

// trackPacer paces every Player that publishes a LiveKit track.
var trackPacer = newPacer()

// add starts sending p's frames from the next slot of the schedule; p is
// new (makePlayer), and this pacer serves it until it is closed.
func (pc *pacer) add(p *Player) {
	p.pacer = pc
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.players = append(pc.players, p)
	if !pc.running {
		pc.running = true
		go pc.run()
	}
}

// remove stops sending p's frames (but one on its way: see Player.Close).
func (pc *pacer) remove(p *Player) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.players = slices.DeleteFunc(pc.players, func(q *Player) bool { return q == p })
	if len(pc.players) == 0 {
		select {
		case pc.kick <- struct{}{}:
		default: // a kick is pending
		}
	}
}

// playing returns the players to serve in this slot into buf, or false if
// there are none left, in which case the goroutine ends.
func (pc *pacer) playing(buf []*Player) ([]*Player, bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if len(pc.players) == 0 {
		pc.running = false
		return buf, false
	}
	return append(buf[:0], pc.players...), true
}

func (pc *pacer) run() {
	timer := time.NewTimer(0)
	defer timer.Stop()
	next := time.Now()
	var players []*Player
	for {
		select {
		case <-timer.C:
		case <-pc.kick:
			if _, ok := pc.playing(nil); !ok {
				return
			}
			continue // a player came back before the goroutine saw it go
		}
		var ok bool
		if players, ok = pc.playing(players); !ok {
			return
		}
		for _, p := range players {
			p.step(next)
		}
		now := time.Now()
		next = next.Add(FrameDuration)
		if behind := now.Sub(next); behind > maxLag {
			// The frames whose time passed while we were stalled are the
			// gap the listeners hear: counted as due, and late.
			missed := int64(behind / FrameDuration)
			for _, p := range players {
				p.frames.Add(missed)
				p.lateFrames.Add(missed)
			}
			next = now
		}
		clear(players) // let closed players go
		timer.Reset(next.Sub(now))
	}
}

// step sends the player's frame due at due.
func (p *Player) step(due time.Time) {
	p.stepMu.Lock()
	defer p.stepMu.Unlock()
	if p.stopped {
		return
	}
	p.frames.Add(1)
	events, emptied := p.fill(p.buf)
	if err := p.sink(due, p.buf); err != nil && !p.sinkFailed {
		p.sinkFailed = true
		p.log.Warn("telephony.player.send_failed", zap.Error(err))
	}
	if emptied {
		// Drained means sent, so it is marked after the last frame went out.
		p.mu.Lock()
		if p.queued == 0 {
			p.markDrained()
		}
		p.mu.Unlock()
	}
	if p.onEvent != nil {
		for _, ev := range events {
			p.onEvent(ev)
		}
	}
}

// Counts are the 20 ms frame slots the player has gone through and, of
// them, those that passed while it was more than 100 ms behind its
// schedule (a stalled process: a gap the listener hears).
func (p *Player) Counts() (frames, late int64) {
	return p.frames.Load(), p.lateFrames.Load()
}

// fill takes the next frame from the queue, padding with silence, and
// reports whether it took the last queued audio.
func (p *Player) fill(frame []int16) ([]PlaybackEvent, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	var events []PlaybackEvent
	now := time.Now()
	for p.open && !p.held && n < len(frame) && len(p.queue) > 0 {
		c := &p.queue[0]
		k := copy(frame[n:], c.pcm)
		n += k
		st := p.item(c.item)
		st.played += k
		if st.played == k {
			events = append(events, PlaybackEvent{Kind: PlaybackStarted, Item: c.item, At: now, Played: p.durationOf(k)})
		}
		p.current = c.item
		p.queued -= k
		if c.pcm = c.pcm[k:]; len(c.pcm) == 0 {
			p.queue[0] = chunk{}
			p.queue = p.queue[1:]
		}
	}
	clear(frame[n:])
	emptied := n > 0 && p.queued == 0
	if emptied {
		played := 0
		if st := p.find(p.current); st != nil {
			played = st.played
		}
		events = append(events, PlaybackEvent{Kind: PlaybackDrained, Item: p.current, At: now, Played: p.durationOf(played)})
	}
	return events, emptied
}

func (p *Player) markDrained() {
	if !isClosed(p.drained) {
		close(p.drained)
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// item returns the bookkeeping of id, creating it (and forgetting the
// oldest) if needed. Callers hold mu.
func (p *Player) item(id string) *itemState {
	if st := p.find(id); st != nil {
		return st
	}
	if len(p.items) == maxItems {
		p.items = append(p.items[:0], p.items[1:]...)
	}
	p.items = append(p.items, itemState{id: id})
	return &p.items[len(p.items)-1]
}

func (p *Player) find(id string) *itemState {
	for i := len(p.items) - 1; i >= 0; i-- {
		if p.items[i].id == id {
			return &p.items[i]
		}
	}
	return nil
}

func (p *Player) durationOf(samples int) time.Duration {
	return time.Duration(int64(samples) * int64(time.Second) / int64(p.rate))
}

func samplesIn(d time.Duration, rate int) int {
	return int(int64(d) * int64(rate) / int64(time.Second))
}
