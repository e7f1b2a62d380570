package call_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/call"
	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/docshield/voice-worker/internal/telephony/calleesim"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/stretchr/testify/require"
)

// The latency figures, measured where a person would notice them:
// at the simulated callee, through the real LiveKit server and two Opus
// legs. Everything that is not the worker's is measured in the same run and
// subtracted: the media round trip through LiveKit (an echo participant
// that republishes what it hears, with none of our code in it), the
// simulator's scripted thinking time, and the model's detection windows.
// Each op is one call of benchRounds turns; the figures are per turn.
//
//	make bench   (or: devstack exec -- go test -run '^$' -bench CallLatency ./internal/call/)

const (
	benchRounds     = 8
	benchDelayMS    = 200 // the simulator's thinking time before each reply
	benchSilenceMS  = 300 // the model's VAD silence window (newCallEnv's)
	benchMinSpeech  = 60  // the simulator's VAD: speech this long starts a turn
	benchReplyMS    = 500
	benchLongTurnMS = 4000
)

func BenchmarkCallLatency(b *testing.B) {
	floor := echoRoundTrip(b)
	b.Run("reply", func(b *testing.B) {
		var added, worker []time.Duration
		for range b.N {
			a, w := replyLatencies(b, floor)
			added, worker = append(added, a...), append(worker, w...)
		}
		reportPercentiles(b, "added", added)
		reportPercentiles(b, "worker", worker)
	})
	for _, tc := range []struct {
		name string
		vad  call.LocalVAD
	}{
		{"barge_in_model_vad", call.LocalVAD{}},
		{"barge_in_local_vad", call.LocalVAD{ThresholdRMS: 1000}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var added []time.Duration
			for range b.N {
				added = append(added, bargeInLatencies(b, floor, tc.vad)...)
			}
			reportPercentiles(b, "added", added)
		})
	}
}

// echoRoundTrip is the floor: the media path through LiveKit and two Opus
// legs each way, with none of our call code in it. An echo participant
// republishes every chunk it hears as its own item, so the Player stamps
// when each went out; the floor is the leg in (callee sends → echo hears)
// plus the leg out (echo sends → callee hears), leaving out the time the
// chunk waited in the echo's queue.
func echoRoundTrip(b *testing.B) time.Duration {
	b.Helper()
	cfg := telephony.Config{
		URL: testenv.Get(b, "LIVEKIT_URL"), APIKey: testenv.Get(b, "LIVEKIT_API_KEY"), APISecret: testenv.Get(b, "LIVEKIT_API_SECRET"),
	}
	ctx := testCtx(b)
	rooms, err := telephony.NewRooms(cfg, nil)
	require.NoError(b, err)
	room, err := rooms.Create(ctx, testenv.UniqueName(b))
	require.NoError(b, err)
	defer func() { _ = rooms.Delete(context.Background(), room) }()

	ec := &echo{sent: map[string]time.Time{}}
	seat, err := telephony.Join(ctx, cfg, room, telephony.ParticipantOptions{
		Identity: telephony.AgentIdentity, Peer: telephony.DefaultCalleeIdentity,
		OnPeerAudio: ec.heard,
		Player:      telephony.PlayerOptions{OnPlayback: ec.played},
	})
	require.NoError(b, err)
	defer seat.Close()
	ec.player.Store(seat.Player())

	callee, err := calleesim.Answer(ctx, cfg, room, calleesim.Options{})
	require.NoError(b, err)
	defer callee.HangUp()
	var steps []calleesim.Step
	for range benchRounds {
		steps = append(steps, calleesim.Say(tone(300*time.Millisecond)), calleesim.Pause(700*time.Millisecond))
	}
	require.NoError(b, callee.Run(ctx, calleesim.Script{Steps: steps}))

	var legs, rtts []time.Duration
	spans := callee.Heard().Spans(100 * time.Millisecond)
	for _, u := range callee.Said() {
		on, ok := ec.onsetAfter(u.Start)
		s, heard := firstSpanAfter(spans, u.Start)
		if !ok || !heard || on.sent.IsZero() {
			continue
		}
		legs = append(legs, on.arrived.Sub(u.Start)+s.Start.Sub(on.sent))
		rtts = append(rtts, s.Start.Sub(u.Start))
	}
	require.NotEmpty(b, legs, "the echo came back")
	floor := percentile(legs, 50)
	b.Logf("media floor (in leg + out leg): p50 %s p95 %s; echo round trip incl. the echo's queue: p50 %s",
		floor, percentile(legs, 95), percentile(rtts, 50))
	return floor
}

// echo republishes what it hears and notes when each utterance's first
// loud chunk arrived and went back out.
type echo struct {
	player atomic.Pointer[telephony.Player]
	mu     sync.Mutex
	seq    int
	loud   bool
	onsets []onset
	sent   map[string]time.Time
}

type onset struct {
	item          string
	arrived, sent time.Time
}

func (e *echo) heard(pcm []int16) {
	now := time.Now()
	p := e.player.Load()
	if p == nil {
		return
	}
	e.mu.Lock()
	e.seq++
	item := strconv.Itoa(e.seq)
	loud := calleesim.RMS(pcm) >= calleesim.DefaultSpeechThreshold
	if loud && !e.loud {
		e.onsets = append(e.onsets, onset{item: item, arrived: now})
	}
	e.loud = loud
	e.mu.Unlock()
	_ = p.Write(item, pcm)
}

func (e *echo) played(ev telephony.PlaybackEvent) {
	if ev.Kind != telephony.PlaybackStarted {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.onsets {
		if e.onsets[i].item == ev.Item {
			e.onsets[i].sent = ev.At
		}
	}
}

func (e *echo) onsetAfter(t time.Time) (onset, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, o := range e.onsets {
		if o.arrived.After(t) {
			return o, true
		}
	}
	return onset{}, false
}

// replyLatencies: the callee says something; the reply is heard. What the
// worker added is the wait heard at the callee, minus the simulator's
// delay, the model's silence window and the media floor. The callee's
// utterance is stamped when its last frame was taken for sending, so its
// sound ends one frame later. What is left still holds the detectors'
// 20 ms frame grid; worker is the part measured inside the worker alone:
// speech_stopped received → first reply audio queued for the callee, minus
// the simulator's delay (both websocket hops included).
func replyLatencies(b *testing.B, floor time.Duration) (added, worker []time.Duration) {
	turns := []realtimesim.AgentTurn{{Text: "Hello.", AudioMS: benchReplyMS}}
	var steps []calleesim.Step
	for range benchRounds {
		turns = append(turns, realtimesim.AgentTurn{Text: "I see.", AudioMS: benchReplyMS})
		steps = append(steps, calleesim.WaitForAgentTurn(), calleesim.Say(tone(500*time.Millisecond)))
	}
	steps = append(steps, calleesim.WaitForAgentTurn(), calleesim.HangUp())
	sc := scenario{
		model:  realtimesim.Script{Agent: turns, ResponseDelayMS: benchDelayMS, Paced: true},
		callee: calleesim.Script{AgentQuiet: 400 * time.Millisecond, Steps: steps},
	}
	e := newCallEnv(b, sc)
	c := e.run(b, testCtx(b), e.inlineTask(b, sc))
	require.Equal(b, store.CallCompleted, c.Status)
	callee := e.answeredCall(b)
	spans := callee.Callee.Heard().Spans(200 * time.Millisecond)
	fixed := time.Duration(benchDelayMS+benchSilenceMS)*time.Millisecond + floor
	for _, u := range callee.Callee.Said() {
		end := u.End.Add(telephony.FrameDuration)
		if s, ok := firstSpanAfter(spans, end); ok {
			added = append(added, s.Start.Sub(end)-fixed)
		}
	}
	require.Len(b, added, benchRounds, "every callee turn got a reply")
	require.Len(b, c.LatenciesMS, benchRounds)
	for _, ms := range c.LatenciesMS {
		worker = append(worker, time.Duration(ms-benchDelayMS)*time.Millisecond)
	}
	return added, worker
}

// bargeInLatencies: the callee talks over a long reply; the agent's voice
// stops at the callee. What the worker added is the time from the callee's
// first word to the agent's last audio heard, minus the media floor and the
// detector's minimum speech. The detectors count 20 ms frames on their own
// grid, and a frame only partly filled by the first sound already counts
// as loud, so detection takes 40 to 60 ms of speech: the figure is good to
// one frame, and may come out below zero.
func bargeInLatencies(b *testing.B, floor time.Duration, vad call.LocalVAD) []time.Duration {
	turns := []realtimesim.AgentTurn{}
	var steps []calleesim.Step
	for range benchRounds {
		turns = append(turns, realtimesim.AgentTurn{Text: "Let me explain at length.", AudioMS: benchLongTurnMS})
		steps = append(steps, calleesim.WaitForAgentSpeech(), calleesim.Pause(400*time.Millisecond),
			calleesim.Say(tone(500*time.Millisecond)))
	}
	steps = append(steps, calleesim.HangUp())
	if vad.ThresholdRMS > 0 {
		vad.MinSpeech = benchMinSpeech * time.Millisecond
	}
	sc := scenario{
		model:    realtimesim.Script{Agent: turns, ResponseDelayMS: benchDelayMS, VAD: realtimesim.VAD{MinSpeechMS: benchMinSpeech}},
		callee:   calleesim.Script{Steps: steps},
		localVAD: vad,
	}
	e := newCallEnv(b, sc)
	c := e.run(b, testCtx(b), e.inlineTask(b, sc))
	require.Equal(b, store.CallCompleted, c.Status)
	callee := e.answeredCall(b)
	spans := callee.Callee.Heard().Spans(100 * time.Millisecond)
	fixed := benchMinSpeech*time.Millisecond + floor
	var out []time.Duration
	for _, u := range callee.Callee.Said() {
		for _, s := range spans {
			if s.Start.Before(u.Start) && !s.End.Before(u.Start) {
				out = append(out, s.End.Sub(u.Start)-fixed)
				break
			}
		}
	}
	require.NotEmpty(b, out, "the agent was talking when the callee barged in")
	return out
}

func firstSpanAfter(spans []calleesim.Span, t time.Time) (calleesim.Span, bool) {
	for _, s := range spans {
		if s.Start.After(t) {
			return s, true
		}
	}
	return calleesim.Span{}, false
}

func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func reportPercentiles(b *testing.B, name string, ds []time.Duration) {
	b.ReportMetric(float64(percentile(ds, 50).Microseconds())/1000, name+"_p50_ms")
	b.ReportMetric(float64(percentile(ds, 95).Microseconds())/1000, name+"_p95_ms")
	b.ReportMetric(0, "ns/op") // an op is a whole call; its time says nothing
}
