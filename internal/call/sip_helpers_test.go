package call_test

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/docshield/voice-worker/internal/telephony/calleesim"
	"github.com/docshield/voice-worker/internal/telephony/sipphone"
	"github.com/docshield/voice-worker/internal/telephony/sipphone/siptest"
	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/require"
)

// The call scenarios run the production phone leg: the Runner dials with
// telephony's SIP dialer, CreateSIPParticipant makes the stack's LiveKit
// SIP service send an INVITE over a trunk of the test's own (digest
// authentication and all) to a SIP phone on loopback (sipphone), which
// answers with G.711 over RTP as its script says and records what it
// heard. Each test has its own phone port, trunk, room and database, so
// they run in parallel.

// newSIPCallEnv is a call to a SIP phone running sc.phone.
func newSIPCallEnv(t testing.TB, sc scenario) *callEnv {
	t.Helper()
	e := newEnv(t)
	e.line = siptest.Start(t, sipphone.Config{Default: sc.phone, Logger: e.log.logger.Named("phone")})
	tcfg := e.line.Telephony(t)
	std := stackTelephony(t)
	tcfg.CallerID, tcfg.RingTimeout = std.CallerID, std.RingTimeout
	dialer, err := telephony.NewSIPDialer(tcfg)
	require.NoError(t, err)
	e.start(t, sc, tcfg, dialer)
	return e
}

// phoneCall is the call the phone got (it must have got one).
func (e *callEnv) phoneCall(t testing.TB) *sipphone.Call {
	t.Helper()
	e.pcMu.Lock()
	defer e.pcMu.Unlock()
	if e.pc == nil {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		c, err := e.line.Phone.WaitCall(ctx, "")
		require.NoError(t, err, "the phone got no call")
		e.pc = c
	}
	return e.pc
}

// ended waits for the phone's call to end and returns its record.
func ended(t testing.TB, c *sipphone.Call) sipphone.Record {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(wait):
		t.Fatalf("the phone's call never ended: %+v", c.Record())
	}
	return c.Record()
}

// whenPhoneHeard waits until the phone of e has heard d of the agent's
// speech, then runs f; it gives up when ctx ends. It runs in the
// background, for the tests that act mid-call.
func (e *callEnv) whenPhoneHeard(ctx context.Context, d time.Duration, f func()) {
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			var heard time.Duration
			if calls := e.line.Phone.Calls(); len(calls) > 0 {
				for _, s := range agentSpeech(calls[0]) {
					heard += s
				}
			}
			if heard >= d {
				f()
				return
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	}()
}

// speechHangover bridges the gaps within one utterance.
const speechHangover = 200 * time.Millisecond

// agentSpeech is the length of each stretch of agent speech the phone
// heard, in stream time.
func agentSpeech(c *sipphone.Call) []time.Duration {
	var out []time.Duration
	var last sipphone.Span
	for _, s := range c.Heard().Spans(speechHangover) {
		// A fragment of a frame or two after a gap is the tail of the
		// utterance before it, cut off by a stalled sender on a starved
		// machine: no utterance is that short. It lengthens the one
		// before (so a leak after a cut still shows), never counts alone.
		if n := len(out); n > 0 && s.Duration() < fragment {
			last.EndPos = s.EndPos
			out[n-1] = last.Duration()
			continue
		}
		last = s
		out = append(out, s.Duration())
	}
	return out
}

// fragment is shorter than any utterance: 2 frames.
const fragment = 40 * time.Millisecond

// phoneTone is callee "speech" on the phone line: loud enough for any
// energy detector.
func phoneTone(d time.Duration) []int16 { return calleesim.Tone(600, d, sipphone.SampleRate, 0.3) }

// firstEvent is when the phone first received (or sent) a request.
func firstEvent(t testing.TB, r sipphone.Record, sent bool, m sip.RequestMethod) time.Time {
	t.Helper()
	at, ok := r.FirstRequest(sent, m)
	require.True(t, ok, "no %s (sent: %t) in %v", m, sent, r.Events)
	return at
}

// hangUpReached bounds a hang-up reaching the other side. The target is a
// second; a busy machine gets more.
const hangUpReached = 5 * time.Second

// requireAgentHangUpReachedThePhone checks that the call's own hang-up
// reached the phone as a BYE, and soon: from the moment the call hung up
// (the Runner's Hangup) to the BYE at the phone.
func (e *callEnv) requireAgentHangUpReachedThePhone(t testing.TB, path string) sipphone.Record {
	t.Helper()
	rec := ended(t, e.phoneCall(t))
	require.Equal(t, sipphone.PartyCaller, rec.HungUpBy, "the worker hung up: %+v", rec.Events)
	require.Equal(t, "bye", rec.EndReason)
	from := e.clock.hangupAt()
	require.False(t, from.IsZero(), "the call hung up")
	took := firstEvent(t, rec, false, sip.BYE).Sub(from)
	t.Logf("measured: hang-up (%s) reached the phone as BYE %s after the call hung up", path, took.Round(time.Millisecond))
	require.Less(t, took, hangUpReached)
	return rec
}

// hangupClock is the Runner's RoomService: the real rooms, noting when the
// call first hung up, which is when its loop decided the call was over.
type hangupClock struct {
	*telephony.Rooms

	mu sync.Mutex
	at time.Time
}

func (h *hangupClock) Hangup(ctx context.Context, leg telephony.CallLeg) error {
	h.mu.Lock()
	if h.at.IsZero() {
		h.at = time.Now()
	}
	h.mu.Unlock()
	return h.Rooms.Hangup(ctx, leg)
}

func (h *hangupClock) hangupAt() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.at
}

// renamingDialer dials the callee under another identity than the one
// the Runner asks for, as a SIP service might name it: the agent must
// listen to the identity the dial's reply names.
type renamingDialer struct {
	telephony.Dialer
	identity string
}

func (d renamingDialer) Dial(ctx context.Context, req telephony.DialRequest) (telephony.CallLeg, error) {
	req.Identity = d.identity
	return d.Dialer.Dial(ctx, req)
}

// audioCheck is the agent's audio as the phone heard it, against the
// call's recording of what was played.
type audioCheck struct {
	heard, played []span // wall-clock spans of speech
	delays        []time.Duration
	heardRMS      float64 // speech level at the phone, after G.711
	playedRMS     float64 // and as played, before Opus and G.711
	quality       sipphone.Quality
}

// span is a stretch of speech on the wall clock.
type span struct{ from, to time.Time }

func (s span) length() time.Duration { return s.to.Sub(s.from) }

// checkAgentAudio compares what the phone heard with what the call
// recorded as played: the same utterances, each as long, each arriving a
// steady network hop after it was played, at the same level, without
// clipping or dropouts.
func checkAgentAudio(t testing.TB, c *sipphone.Call, rec *tapeRecorder) audioCheck {
	t.Helper()
	var a audioCheck
	a.quality = c.Heard().Quality()
	for _, s := range c.Heard().Spans(speechHangover) {
		// Arrival of the first and last loud packet; the last one's 20 ms
		// is heard after it arrived.
		a.heard = append(a.heard, span{s.Start, s.End.Add(20 * time.Millisecond)})
	}
	a.heardRMS = a.quality.SpeechRMS
	a.played, a.playedRMS = playedSpeech(rec.agentPlayed(), speechHangover)
	t.Logf("phone heard %v at %.0f RMS; the call played %v at %.0f RMS; quality %+v",
		lengths(a.heard), a.heardRMS, lengths(a.played), a.playedRMS, a.quality)
	require.Len(t, a.heard, len(a.played), "the phone heard each utterance the call played, and nothing else")
	for i := range a.heard {
		d := a.heard[i].from.Sub(a.played[i].from)
		a.delays = append(a.delays, d)
		// An utterance's length at the phone differs from its length as
		// played by the change in transit time between its first and last
		// packets: on a starved machine the media path (LiveKit,
		// livekit-sip's mixer, the phone) varies by hundreds of ms. A
		// backlog delays whole utterances instead, and the spread of the
		// delays below catches it.
		tol := 200*time.Millisecond + a.quality.TransitSpread
		require.InDelta(t, a.played[i].length().Milliseconds(), a.heard[i].length().Milliseconds(), float64(tol.Milliseconds()),
			"utterance %d is as long at the phone as it was played (transit spread %s)", i, a.quality.TransitSpread)
		require.Positive(t, d, "utterance %d reached the phone after it was played", i)
		require.Less(t, d, time.Second, "utterance %d reached the phone within a second", i)
	}
	spread := slicesSpread(a.delays)
	t.Logf("measured: agent audio reached the phone %v after it was played (spread %s); level %.1f dB from played; %d clipped; %s lost of %s; transit spread %s",
		a.delays, spread, 20*math.Log10(a.heardRMS/a.playedRMS), a.quality.Clipped, a.quality.Lost, a.quality.Duration, a.quality.TransitSpread)
	require.Less(t, spread, 250*time.Millisecond, "the delay stays steady: no backlog builds up in the agent's audio")
	require.InDelta(t, 0, 20*math.Log10(a.heardRMS/a.playedRMS), 3, "the level survives Opus and G.711 within 3 dB")
	require.Zero(t, a.quality.Clipped, "no clipping")
	require.Less(t, a.quality.Lost, a.quality.Duration/50, "dropouts under 2%% of the stream: %v", a.quality.Gaps)
	return a
}

func lengths(spans []span) []time.Duration {
	out := make([]time.Duration, len(spans))
	for i, s := range spans {
		out[i] = s.length().Round(time.Millisecond)
	}
	return out
}

func slicesSpread(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	lo, hi := ds[0], ds[0]
	for _, d := range ds {
		lo, hi = min(lo, d), max(hi, d)
	}
	return hi - lo
}

// playedSpeech finds the speech in the agent audio the call recorded, the
// way the phone's Recording finds it in what it heard: 20 ms frames at or
// above its speech threshold, gaps up to hangover bridged; and the level
// of those frames together.
func playedSpeech(chunks []playedChunk, hangover time.Duration) ([]span, float64) {
	const frame = rate / 50
	var out []span
	var energy float64
	var loud int
	for _, c := range chunks {
		for i := 0; i+frame <= len(c.pcm); i += frame {
			f := c.pcm[i : i+frame]
			level := calleesim.RMS(f)
			if level < sipphone.DefaultSpeechThreshold {
				continue
			}
			energy += level * level * frame
			loud += frame
			at := c.at.Add(time.Duration(i) * time.Second / rate)
			end := at.Add(20 * time.Millisecond)
			if n := len(out); n > 0 && at.Sub(out[n-1].to) <= hangover {
				out[n-1].to = end
				continue
			}
			out = append(out, span{at, end})
		}
	}
	if loud == 0 {
		return out, 0
	}
	return out, math.Sqrt(energy / float64(loud))
}
