package call

import (
	"math"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/store"
	"github.com/stretchr/testify/require"
)

func frames(n int, amplitude float64) []int16 {
	pcm := make([]int16, n*vadFrame)
	for i := range pcm {
		pcm[i] = int16(amplitude * math.Sin(2*math.Pi*600*float64(i)/24000))
	}
	return pcm
}

// The local detector fires once per utterance, after MinSpeech of loud
// audio, and again only after a pause.
func TestEnergyVADFindsOnsets(t *testing.T) {
	v := newEnergyVAD(LocalVAD{ThresholdRMS: 1000, MinSpeech: 60 * time.Millisecond})
	require.False(t, v.feed(frames(10, 200)), "quiet")
	require.False(t, v.feed(frames(2, 8000)), "40 ms is not yet speech")
	require.True(t, v.feed(frames(1, 8000)), "60 ms is")
	require.False(t, v.feed(frames(20, 8000)), "the same utterance goes on")
	require.False(t, v.feed(frames(10, 0)), "a short pause does not end it")
	require.False(t, v.feed(frames(5, 8000)))
	require.False(t, v.feed(frames(vadQuietFrames, 0)), "a long pause ends it")
	// Fed in odd chunk sizes, as the media path may deliver them.
	loud := frames(3, 8000)
	require.False(t, v.feed(loud[:700]))
	require.True(t, v.feed(loud[700:]), "a new utterance")
	require.Nil(t, newEnergyVAD(LocalVAD{}), "zero threshold: off")
}

// A missing variable anywhere in the prompt names the template and the
// variable, before anything is dialed.
func TestRenderNamesTheTemplate(t *testing.T) {
	_, err := render(Prompt{Instructions: "Call {{practice}}.", Greeting: "Hi {{name}}", Variables: map[string]string{"practice": "Elm"}})
	require.ErrorContains(t, err, "greeting: template variables without a value: name")
	s, err := render(Prompt{Instructions: "Call {{practice}}.", VoicemailMessage: "Call {{practice}} back", Variables: map[string]string{"practice": "Elm"}})
	require.NoError(t, err)
	require.Equal(t, "Call Elm.", s.instructions)
	require.Equal(t, "Call Elm back", s.voicemail)
	_, err = render(Prompt{})
	require.ErrorContains(t, err, "instructions are empty")
}

// Turns are emitted when complete; an agent turn spans what was played,
// and one cut short is marked.
func TestTranscriptAssemblesTurns(t *testing.T) {
	zero := time.Unix(1_800_000_000, 0)
	at := func(ms int) time.Time { return zero.Add(time.Duration(ms) * time.Millisecond) }
	var got []store.Turn
	tr := newTranscript(zero, 300*time.Millisecond, func() time.Time { return at(100) }, func(t store.Turn) { got = append(got, t) })

	tr.agentAudio("a1", "r1")
	tr.agentDelta("a1", "Hello")
	tr.playStarted("a1", at(200))
	tr.agentText("a1", "Hello there.")
	require.Empty(t, got, "still playing")
	tr.agentAudioDone("a1")
	tr.drained("a1", at(1200))
	require.Equal(t, []store.Turn{{Role: "agent", Text: "Hello there.", StartMS: 200, EndMS: 1200}}, got)

	tr.speechStarted("c1", 1500) // input began at 100 ms
	tr.speechStopped("c1", 2600)
	tr.calleeText("c1", " Hi. ")
	require.Equal(t, store.Turn{Role: "callee", Text: "Hi.", StartMS: 1600, EndMS: 2400}, got[1])

	tr.agentAudio("a2", "r2")
	tr.agentDelta("a2", "Let me")
	tr.agentAudio("a3", "r2")
	tr.playStarted("a2", at(3000))
	tr.cut("a2", at(3500))
	tr.responseDone("r2")
	require.Equal(t, store.Turn{Role: "agent", Text: "Let me [interrupted]", StartMS: 3000, EndMS: 3500}, got[2])
	tr.flush(at(5000))
	require.Len(t, got, 3, "a3 was never heard")

	// The model's input began a packet before the answer (its first batch
	// counts back from its send time): speech from its start is at 0.
	got = nil
	early := newTranscript(zero, 300*time.Millisecond, func() time.Time { return at(-13) }, func(t store.Turn) { got = append(got, t) })
	early.speechStarted("c2", 0)
	early.speechStopped("c2", 1300)
	early.calleeText("c2", "Elm Dental.")
	require.Equal(t, []store.Turn{{Role: "callee", Text: "Elm Dental.", StartMS: 0, EndMS: 1000}}, got)
}
