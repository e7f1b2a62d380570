package call_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/docshield/voice-worker/internal/call"
	"github.com/docshield/voice-worker/internal/realtime"
	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/docshield/voice-worker/internal/telephony/calleesim"
)

// A call's life, wired as the worker wires it but with the two simulators
// standing in for what cannot be reached from a development machine: the
// model (realtimesim, the Realtime WebSocket protocol) and the phone
// network (calleesim, a participant in the call's real LiveKit room).
// The Runner claims nothing itself: the Handler claims an attempt and hands
// it over; Run places the call, converses, and writes one terminal status.
//
// It needs a LiveKit server and MongoDB (the devstack's settings in the
// environment), so it is compiled with the tests but not run;
// TestConversationEndsWithEndCall runs this same flow under make test.
func ExampleRunner() {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{URI: os.Getenv("MONGODB_URI"), Database: "example"})
	if err != nil {
		panic(err)
	}
	tcfg := telephony.Config{URL: os.Getenv("LIVEKIT_URL"), APIKey: os.Getenv("LIVEKIT_API_KEY"),
		APISecret: os.Getenv("LIVEKIT_API_SECRET"), CallerID: "+14155550199"}
	rooms, err := telephony.NewRooms(tcfg, nil)
	if err != nil {
		panic(err)
	}

	// The model: greets, listens, then ends the call with a tool.
	model := realtimesim.New(realtimesim.Script{Agent: []realtimesim.AgentTurn{
		{Text: "Hello, this is Ava from DocShield.", AudioMS: 1500},
		{Tool: &realtimesim.ToolCall{Name: "end_call", Arguments: []byte(`{"reason":"confirmed"}`)}},
	}})
	base, err := model.Start("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer model.Close()

	// The phone network: the callee answers and waits for the agent to
	// finish its turn.
	dialer, err := calleesim.NewDialer(tcfg, calleesim.DialerOptions{
		Script: func(telephony.DialRequest) calleesim.Script {
			return calleesim.Script{Steps: []calleesim.Step{calleesim.WaitForAgentTurn()}}
		},
	})
	if err != nil {
		panic(err)
	}
	defer dialer.Close()

	runner, err := call.NewRunner(call.Options{
		Store: st, Rooms: rooms, Dialer: dialer, Telephony: tcfg,
		Realtime: realtime.Config{BaseURL: base, APIKey: realtimesim.DefaultAPIKey},
	})
	if err != nil {
		panic(err)
	}
	h := &call.Handler{Calls: st, Runner: runner, Owner: "example", Lease: time.Minute}
	_ = h // h.ProcessTask(ctx, task) claims an attempt and runs it; Run directly:

	attempt := &store.Call{ID: "oneoff-example-0001", Phone: "+12125550100",
		Instructions: "You are Ava, calling to confirm an appointment."}
	if err := st.CreateAttempt(ctx, attempt); err != nil {
		panic(err)
	}
	claim, err := st.ClaimAttempt(ctx, attempt.ID, "example", time.Minute)
	if err != nil {
		panic(err)
	}
	_ = runner.Run(ctx, claim, attempt) // always nil: the outcome is on the attempt
	c, err := st.GetCall(ctx, attempt.ID)
	if err != nil {
		panic(err)
	}
	fmt.Println(c.Status, len(c.Transcript), "turns")
}
