package call

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/docshield/voice-worker/internal/telephony/heard"
)

// media is where LiveKit's goroutines meet the call. The callee's voice is
// handed on right there, without a hop: to the model (SendAudio never
// blocks) and to the local barge-in detector as PCM, and to the recorder
// as the Opus packets it came in. The agent's packets go to the recorder
// from the player's pacing goroutine as they are sent. What the call's
// loop must act on (playback progress, a local barge-in) goes to it
// through buffered channels that never block the media path.
type media struct {
	sess    atomic.Pointer[modelSession] // set once the session is up
	muted   atomic.Bool                  // the call is ending: the model hears no more
	firstIn atomic.Int64                 // unix nanos of the first callee audio sent to the model
	lastIn  atomic.Int64                 // unix nanos of the latest callee audio, for media loss
	loudIn  atomic.Int64                 // unix nanos of the latest callee audio above a murmur

	detectMu     sync.Mutex    // guards vad and beep: a re-published track means a second media goroutine
	vad          *energyVAD    // nil: off
	beep         *beepDetector // an answering machine's beep
	agentTalking atomic.Bool   // set by the loop: a barge-in needs the agent to be talking
	barge        chan struct{}
	beeps        chan time.Time // when a beep ended; the newest waits if the loop is busy

	playback chan telephony.PlaybackEvent

	recMu sync.Mutex // guards rec: no recorder call once Close began
	rec   Recorder
}

// playbackBuffer holds playback events between two turns of the loop;
// there are two per agent item at most, so it never fills in practice.
const playbackBuffer = 256

func newMedia(v LocalVAD) *media {
	return &media{
		vad:      newEnergyVAD(v),
		beep:     newBeepDetector(telephony.DefaultSampleRate),
		barge:    make(chan struct{}, 1),
		beeps:    make(chan time.Time, 1),
		playback: make(chan telephony.PlaybackEvent, playbackBuffer),
	}
}

func (m *media) setSession(s modelSession) { m.sess.Store(&s) }

func (m *media) setRecorder(r Recorder) {
	m.recMu.Lock()
	m.rec = r
	m.recMu.Unlock()
}

// calleeAudio is telephony's OnPeerAudio: it runs on the media goroutine.
func (m *media) calleeAudio(pcm []int16) {
	now := time.Now()
	m.lastIn.Store(now.UnixNano())
	if heard.RMS(pcm) >= murmurRMS {
		m.loudIn.Store(now.UnixNano())
	}
	m.detectMu.Lock()
	onset := m.vad != nil && m.vad.feed(pcm)
	// Fed all the time: the model may recognise the machine after its beep.
	beepEnd := m.beep.feed(now.Add(-samplesDuration(len(pcm))), pcm)
	m.detectMu.Unlock()
	// The VAD is fed all the time too, so a callee who was already talking
	// when the agent began is not taken for a new barge-in.
	if onset && m.agentTalking.Load() {
		select {
		case m.barge <- struct{}{}:
		default: // one pending is enough
		}
	}
	if !beepEnd.IsZero() {
		select {
		case <-m.beeps: // the newest beep is the one that counts
		default:
		}
		m.beeps <- beepEnd
	}
	if s := m.sess.Load(); s != nil && !m.muted.Load() {
		m.firstIn.CompareAndSwap(0, now.Add(-samplesDuration(len(pcm))).UnixNano())
		_ = (*s).SendAudio(pcm) // an ended session is noticed by the loop
	}
}

// calleePacket is telephony's OnPeerPacket: the callee's voice as it
// arrived, just before calleeAudio gets it decoded, on the media goroutine.
func (m *media) calleePacket(pkt []byte) {
	m.recMu.Lock()
	if m.rec != nil {
		m.rec.CalleePacket(time.Now(), pkt)
	}
	m.recMu.Unlock()
}

// agentPacket is the Player's OnSent: the agent's voice as it went to the
// callee (silence too, and nothing of a reply cut by barge-in past the
// cut), on the pacing goroutine.
func (m *media) agentPacket(at time.Time, pkt []byte) {
	m.recMu.Lock()
	if m.rec != nil {
		m.rec.AgentPacket(at, pkt)
	}
	m.recMu.Unlock()
}

// murmurRMS is the level below which the callee's line counts as quiet
// (line noise, breathing).
const murmurRMS = 300.0

// lastLoudCalleeAudio is when the callee's line was last above a murmur;
// zero before.
func (m *media) lastLoudCalleeAudio() time.Time {
	if n := m.loudIn.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// lastCalleeAudio is when the callee's audio last arrived; zero before any.
func (m *media) lastCalleeAudio() time.Time {
	if n := m.lastIn.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// inputStart is when the model's input audio began (its audio_start_ms and
// audio_end_ms count from there); zero before any was sent.
func (m *media) inputStart() time.Time {
	if n := m.firstIn.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// onPlayback is the Player's OnPlayback: it runs on the pacing goroutine
// and must return at once.
func (m *media) onPlayback(ev telephony.PlaybackEvent) {
	select {
	case m.playback <- ev:
	default: // the loop is stalled; the next event carries the news
	}
}

// closeRecorder stops feeding the recorder, then closes it.
func (m *media) closeRecorder(ctx context.Context) (*store.Recording, error) {
	m.recMu.Lock()
	rec := m.rec
	m.rec = nil
	m.recMu.Unlock()
	if rec == nil {
		return nil, nil
	}
	return rec.Close(ctx)
}

func samplesDuration(n int) time.Duration {
	return time.Duration(int64(n) * int64(time.Second) / telephony.DefaultSampleRate)
}

func durationSamples(d time.Duration) int {
	return int((int64(d)*telephony.DefaultSampleRate + int64(time.Second)/2) / int64(time.Second))
}
