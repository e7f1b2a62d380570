package realtime_test

import (
	"context"
	"fmt"

	"github.com/docshield/voice-worker/internal/realtime"
	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
)

// The agent greets first: dial, ask for a response, play its audio.
func Example() {
	sim := realtimesim.New(realtimesim.Script{Agent: []realtimesim.AgentTurn{{Text: "Hello, this is DocShield.", AudioMS: 800}}})
	base, err := sim.Start("127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sim.Close()

	s, err := realtime.Dial(context.Background(), realtime.Config{
		BaseURL: base, APIKey: realtimesim.DefaultAPIKey, Instructions: "You call doctors' offices for DocShield.",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	if err := s.CreateResponse("Greet the office."); err != nil {
		fmt.Println(err)
		return
	}
	samples := 0
	for ev := range s.Events() {
		switch e := ev.(type) {
		case realtime.AudioDelta:
			samples += len(e.PCM) // a real call plays these and reports them with MarkPlayed
		case realtime.TranscriptDone:
			fmt.Println("agent said:", e.Transcript)
		case realtime.ResponseDone:
			fmt.Printf("%s, %d ms of audio\n", e.Response.Status, realtime.SamplesToMS(samples))
			return
		}
	}
	// Output:
	// agent said: Hello, this is DocShield.
	// completed, 800 ms of audio
}
