package realtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/docshield/voice-worker/internal/realtime"
	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
)

func TestDialSendsGASessionUpdate(t *testing.T) {
	srv, base := startSim(t, realtimesim.Script{})
	cfg := testConfig(base)
	cfg.Voice = "cedar"
	cfg.VAD.SilenceDurationMS = 600
	cfg.Tools = []realtime.Tool{{Name: "end_call", Description: "Hang up.",
		Parameters: json.RawMessage(`{"type":"object","properties":{"reason":{"type":"string"}},"required":["reason"]}`)}}
	s := dial(t, cfg)

	require.True(t, strings.HasPrefix(s.Info().ID, "sess_"), "session id %q", s.Info().ID)
	require.Equal(t, "gpt-realtime", s.Info().Model)

	updates := srv.Log().EventsOfType("session.update")
	require.Len(t, updates, 1)
	var got struct {
		Session struct {
			Type         string         `json:"type"`
			Instructions string         `json:"instructions"`
			Modalities   any            `json:"modalities"` // beta field, must be absent
			Audio        map[string]any `json:"audio"`
			Tools        []struct {
				Type, Name string
				Parameters map[string]any
			} `json:"tools"`
		} `json:"session"`
	}
	require.NoError(t, json.Unmarshal(updates[0].Raw, &got))
	require.Equal(t, "realtime", got.Session.Type)
	require.Equal(t, cfg.Instructions, got.Session.Instructions)
	require.Nil(t, got.Session.Modalities)
	pcm := map[string]any{"type": "audio/pcm", "rate": 24000.0}
	require.Equal(t, pcm, dig(got.Session.Audio, "input", "format"))
	require.Equal(t, pcm, dig(got.Session.Audio, "output", "format"))
	require.Equal(t, "cedar", dig(got.Session.Audio, "output", "voice"))
	require.Equal(t, "server_vad", dig(got.Session.Audio, "input", "turn_detection", "type"))
	require.Equal(t, 600.0, dig(got.Session.Audio, "input", "turn_detection", "silence_duration_ms"))
	require.Equal(t, true, dig(got.Session.Audio, "input", "turn_detection", "interrupt_response"))
	require.Equal(t, realtime.DefaultTranscriptionModel, dig(got.Session.Audio, "input", "transcription", "model"))
	require.Len(t, got.Session.Tools, 1)
	require.Equal(t, "function", got.Session.Tools[0].Type)
	require.Equal(t, "end_call", got.Session.Tools[0].Name)
	require.Equal(t, []any{"reason"}, got.Session.Tools[0].Parameters["required"])

	// session.updated is the server's effective configuration.
	var effective map[string]any
	require.NoError(t, json.Unmarshal(s.Info().Raw, &effective))
	require.Equal(t, "cedar", dig(effective, "audio", "output", "voice"))
}

func dig(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

func TestGreetingAudioArrivesAsPCM(t *testing.T) {
	const text = "Hello, this is DocShield calling about a records request."
	srv, base := startSim(t, realtimesim.Script{Agent: []realtimesim.AgentTurn{{Text: text, AudioMS: 1500}}})
	s := dial(t, testConfig(base))

	require.NoError(t, s.CreateResponse("Greet the office and say who you are."))
	done, seen := next[realtime.ResponseDone](t, s)

	var pcm []int16
	var transcript strings.Builder
	var final string
	for _, ev := range seen {
		switch e := ev.(type) {
		case realtime.AudioDelta:
			pcm = append(pcm, e.PCM...)
		case realtime.TranscriptDelta:
			transcript.WriteString(e.Delta)
		case realtime.TranscriptDone:
			final = e.Transcript
		}
	}
	require.Len(t, pcm, realtime.MSToSamples(1500))
	// Sample-exact: byte order and framing survive the wire.
	require.Equal(t, realtimesim.Voice(1500, text), pcm)
	require.Equal(t, text, transcript.String())
	require.Equal(t, text, final)

	require.Equal(t, "completed", done.Response.Status)
	require.NoError(t, done.Response.Err())
	require.NotNil(t, done.Response.Usage)
	require.Positive(t, done.Response.Usage.OutputTokenDetails.AudioTokens)
	require.Equal(t, done.Response.Usage.InputTokens+done.Response.Usage.OutputTokens, done.Response.Usage.TotalTokens)

	a := s.AssistantAudio()
	require.Equal(t, 1500, a.ReceivedMS)
	require.True(t, a.Done)
	require.Equal(t, int64(len(pcm)), s.Stats().OutputSamples)

	l := srv.Log()
	require.Len(t, l.Responses, 1)
	require.Equal(t, "Greet the office and say who you are.", l.Responses[0].Instructions)
}

func TestCalleeSpeechIsDetectedAndTranscribed(t *testing.T) {
	script := realtimesim.Script{
		Agent:  []realtimesim.AgentTurn{{Text: "Hello.", AudioMS: 300}, {Text: "Great, thank you.", AudioMS: 300}},
		Callee: []string{"Yes, this is the front desk."},
	}
	srv, base := startSim(t, script)
	s := dial(t, testConfig(base))
	require.NoError(t, s.CreateResponse(""))
	next[realtime.ResponseDone](t, s)

	audio := calleeSays(500, 400, 800)
	sendPCM(t, s, audio)

	started, _ := next[realtime.SpeechStarted](t, s)
	// Speech begins at 500 ms; the server reports it minus 300 ms of prefix padding.
	require.Equal(t, 200, started.AudioStartMS)
	stopped, _ := next[realtime.SpeechStopped](t, s)
	// Speech ends at 900 ms; the stop includes 500 ms of silence.
	require.Equal(t, 1400, stopped.AudioEndMS)
	require.Equal(t, started.ItemID, stopped.ItemID)
	committed, _ := next[realtime.InputCommitted](t, s)
	require.Equal(t, started.ItemID, committed.ItemID)
	tr, _ := next[realtime.InputTranscript](t, s)
	require.Equal(t, started.ItemID, tr.ItemID)
	require.Equal(t, "Yes, this is the front desk.", tr.Transcript)

	// Server VAD answers by itself (create_response).
	next[realtime.ResponseCreated](t, s)
	reply, _ := next[realtime.TranscriptDone](t, s)
	require.Equal(t, "Great, thank you.", reply.Transcript)

	require.Equal(t, int64(len(audio)), s.Stats().InputSamples)
	l := waitLog(t, srv, func(l realtimesim.Log) bool { return l.AudioSamples == len(audio) })
	require.Equal(t, []realtimesim.CalleeTurn{{Conn: 1, ItemID: started.ItemID, AudioStartMS: 200, AudioEndMS: 1400,
		Transcript: "Yes, this is the front desk."}}, l.CalleeTurns)
}

func TestBargeInTruncatesAtPlayedPosition(t *testing.T) {
	script := realtimesim.Script{
		Agent:  []realtimesim.AgentTurn{{Text: "Good morning, I am calling about a patient.", AudioMS: 3000}, {Text: "Of course.", AudioMS: 300}},
		Callee: []string{"Sorry, who is this?"},
	}
	srv, base := startSim(t, script)
	s := dial(t, testConfig(base))
	require.NoError(t, s.CreateResponse(""))
	first, _ := next[realtime.AudioDelta](t, s)
	next[realtime.ResponseDone](t, s)

	// The server sends audio faster than real time: all 3 s arrived, but the
	// callee has heard only 1.2 s when they start talking.
	s.MarkPlayed(first.ItemID, realtime.MSToSamples(1200))
	s.MarkPlayed("some-older-item", realtime.MSToSamples(500)) // ignored
	sendPCM(t, s, calleeSays(100, 400, 0))                     // still talking
	next[realtime.SpeechStarted](t, s)

	in, err := s.Interrupt(first.ItemID)
	require.NoError(t, err)
	require.Equal(t, realtime.Truncation{ItemID: first.ItemID, PlayedMS: 1200, ReceivedMS: 3000}, in)
	truncated, _ := next[realtime.ItemTruncated](t, s)
	require.Equal(t, realtime.ItemTruncated{ItemID: first.ItemID, AudioEndMS: 1200}, truncated)
	require.True(t, s.AssistantAudio().Truncated)

	// The callee finishes; the server answers with a new item.
	sendPCM(t, s, realtimesim.Silence(800))
	tr, _ := next[realtime.InputTranscript](t, s)
	require.Equal(t, "Sorry, who is this?", tr.Transcript)
	reply, _ := next[realtime.AudioDelta](t, s)
	require.NotEqual(t, first.ItemID, reply.ItemID)
	again, err := s.Interrupt(first.ItemID)
	require.NoError(t, err)
	require.Zero(t, again, "a second barge-in on the same item must not truncate again")
	require.True(t, s.AssistantAudio(first.ItemID).Truncated)
	require.False(t, s.AssistantAudio().Truncated, "the new item is untouched")

	l := waitLog(t, srv, func(l realtimesim.Log) bool { return len(l.Truncates) > 0 })
	require.Equal(t, []realtimesim.Truncate{{Conn: 1, ItemID: first.ItemID, AudioEndMS: 1200}}, l.Truncates)
}

func TestBargeInWhileStreamingCancelsResponse(t *testing.T) {
	script := realtimesim.Script{
		Paced:           true, // real-time audio, so the response is still running when the callee speaks
		ChunkMS:         100,
		ResponseDelayMS: 20,
		Agent:           []realtimesim.AgentTurn{{Text: "This is a long explanation that the callee will interrupt.", AudioMS: 20000}},
	}
	srv, base := startSim(t, script)
	s := dial(t, testConfig(base))
	require.NoError(t, s.CreateResponse(""))
	first, _ := next[realtime.AudioDelta](t, s)
	s.MarkPlayed(first.ItemID, len(first.PCM))

	sendPCM(t, s, calleeSays(0, 300, 0))
	next[realtime.SpeechStarted](t, s)
	in, err := s.Interrupt("")
	require.NoError(t, err)
	require.Equal(t, first.ItemID, in.ItemID)
	require.Equal(t, 100, in.PlayedMS)

	done, seen := next[realtime.ResponseDone](t, s)
	require.Equal(t, "cancelled", done.Response.Status)
	require.Equal(t, "turn_detected", done.Response.StatusDetails.Reason)
	for _, ev := range seen {
		if d, ok := ev.(realtime.AudioDelta); ok {
			require.NotEqual(t, first.ItemID, d.ItemID, "audio of the interrupted item was delivered after Interrupt")
		}
	}

	l := waitLog(t, srv, func(l realtimesim.Log) bool { return len(l.Truncates) == 1 })
	require.Equal(t, 100, l.Truncates[0].AudioEndMS)
	require.Equal(t, "cancelled", l.Responses[0].Status)
	require.Less(t, l.Responses[0].AudioSamples, realtime.MSToSamples(20000))
}

func TestToolCallRoundTrip(t *testing.T) {
	script := realtimesim.Script{Agent: []realtimesim.AgentTurn{
		{Text: "Thanks, I will end the call now.", AudioMS: 300,
			Tool: &realtimesim.ToolCall{Name: "end_call", Arguments: json.RawMessage(`{"reason":"completed"}`)}},
		{Text: "Goodbye.", AudioMS: 300},
	}}
	srv, base := startSim(t, script)
	cfg := testConfig(base)
	cfg.Tools = []realtime.Tool{{Name: "end_call"}}
	s := dial(t, cfg)

	require.NoError(t, s.CreateResponse(""))
	call, _ := next[realtime.FunctionCall](t, s)
	require.Equal(t, "end_call", call.Name)
	require.JSONEq(t, `{"reason":"completed"}`, call.Arguments)
	require.NotEmpty(t, call.CallID)
	done, _ := next[realtime.ResponseDone](t, s)
	require.Equal(t, "completed", done.Response.Status)
	require.Len(t, done.Response.Output, 2)
	require.Equal(t, "function_call", done.Response.Output[1].Type)
	require.Equal(t, call.CallID, done.Response.Output[1].CallID)

	require.NoError(t, s.SendToolResult(call.CallID, `{"ok":true}`))
	next[realtime.ResponseCreated](t, s)
	bye, _ := next[realtime.TranscriptDone](t, s)
	require.Equal(t, "Goodbye.", bye.Transcript)
	next[realtime.ResponseDone](t, s)

	l := srv.Log()
	require.Equal(t, []realtimesim.ToolOutput{{Conn: 1, CallID: call.CallID, Output: `{"ok":true}`}}, l.ToolOutputs)
	var order []string
	for _, e := range l.Events {
		order = append(order, e.Type)
	}
	require.Equal(t, []string{"session.update", "response.create", "conversation.item.create", "response.create"}, order)
	require.Error(t, s.SendToolResult("", "x"))
}

func TestAPIErrorsAreTyped(t *testing.T) {
	script := realtimesim.Script{Faults: []realtimesim.Fault{
		{At: realtimesim.AtResponseCreate, N: 1, Do: realtimesim.RateLimit},
		{At: realtimesim.AtResponseCreate, N: 2, Do: realtimesim.ServerError},
		{At: realtimesim.AtResponseCreate, N: 3, Do: realtimesim.FailResponse},
		{At: realtimesim.AtResponseCreate, N: 4, Do: realtimesim.SessionExpired},
	}}
	_, base := startSim(t, script)
	s := dial(t, testConfig(base))

	require.NoError(t, s.CreateResponse(""))
	e, _ := next[realtime.ErrorEvent](t, s)
	require.ErrorIs(t, e.Err, realtime.ErrRateLimited)
	require.NotErrorIs(t, e.Err, realtime.ErrServer)

	require.NoError(t, s.CreateResponse(""))
	e, _ = next[realtime.ErrorEvent](t, s)
	require.ErrorIs(t, e.Err, realtime.ErrServer)

	require.NoError(t, s.CreateResponse(""))
	done, _ := next[realtime.ResponseDone](t, s)
	require.Equal(t, "failed", done.Response.Status)
	require.ErrorIs(t, done.Response.Err(), realtime.ErrServer)

	// Cancelling when nothing runs is refused; the session goes on.
	require.NoError(t, s.CancelResponse())
	e, _ = next[realtime.ErrorEvent](t, s)
	require.ErrorIs(t, e.Err, realtime.ErrInvalidRequest)
	var api *realtime.APIError
	require.ErrorAs(t, e.Err, &api)
	require.Equal(t, "response_cancel_not_active", api.Code)
	require.False(t, api.Fatal())
	require.NotEmpty(t, api.EventID, "the error names the client event that caused it")

	require.NoError(t, s.CreateResponse(""))
	e, _ = next[realtime.ErrorEvent](t, s)
	require.ErrorIs(t, e.Err, realtime.ErrSessionExpired)

	drain(t, s)
	require.ErrorIs(t, s.Err(), realtime.ErrSessionExpired)
	require.ErrorIs(t, s.Err(), realtime.ErrClosed)
	var ce *realtime.CloseError
	require.ErrorAs(t, s.Err(), &ce)
	require.Equal(t, 1000, ce.Code)
}

func TestServerDropEndsSessionWithoutLeaks(t *testing.T) {
	script := realtimesim.Script{
		Agent:  []realtimesim.AgentTurn{{Text: "Hello there.", AudioMS: 2000}},
		Faults: []realtimesim.Fault{{At: realtimesim.AtAudioDelta, N: 2, Do: realtimesim.Drop}},
	}
	_, base := startSim(t, script)
	s, err := realtime.Dial(context.Background(), withDialTimeout(testConfig(base)))
	require.NoError(t, err)
	require.NoError(t, s.CreateResponse(""))

	drain(t, s)
	<-s.Done()
	require.ErrorIs(t, s.Err(), realtime.ErrClosed)
	var ce *realtime.CloseError
	require.ErrorAs(t, s.Err(), &ce)
	require.Equal(t, 1006, ce.Code, "a dropped socket has no close frame")

	require.ErrorIs(t, s.SendAudio(make([]int16, 480)), realtime.ErrClosed)
	require.ErrorIs(t, s.CreateResponse(""), realtime.ErrClosed)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	requireNoGoroutines(t, sessionGoroutines)
}

func TestContextCancelEndsSession(t *testing.T) {
	srv, base := startSim(t, realtimesim.Script{})
	ctx, cancel := context.WithCancel(context.Background())
	s, err := realtime.Dial(ctx, withDialTimeout(testConfig(base)))
	require.NoError(t, err)
	cancel()
	drain(t, s)
	require.ErrorIs(t, s.Err(), context.Canceled)
	require.ErrorIs(t, s.Err(), realtime.ErrClosed)
	require.NoError(t, s.Close())
	requireNoGoroutines(t, sessionGoroutines)

	require.NoError(t, srv.Close())
	requireNoGoroutines(t, simGoroutines)
}

func TestCloseEndsSessionAndServerSeesIt(t *testing.T) {
	srv, base := startSim(t, realtimesim.Script{})
	s, err := realtime.Dial(context.Background(), withDialTimeout(testConfig(base)))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, s.Err(), "a session we closed ended without error")
	_, open := <-s.Events()
	require.False(t, open)
	require.ErrorIs(t, s.Truncate("item", 10), realtime.ErrClosed)
	requireNoGoroutines(t, sessionGoroutines)
	waitLog(t, srv, func(l realtimesim.Log) bool { return l.Disconnects == 1 })
	require.NoError(t, srv.Close())
	requireNoGoroutines(t, simGoroutines)
}

func TestUnknownEventsAreIgnoredAndMalformedReported(t *testing.T) {
	script := realtimesim.Script{
		Agent: []realtimesim.AgentTurn{{Text: "Hi.", AudioMS: 500}},
		Faults: []realtimesim.Fault{
			// During the handshake...
			{At: realtimesim.AtConnect, Do: realtimesim.UnknownEvent},
			{At: realtimesim.AtConnect, Do: realtimesim.Malformed},
			// ...and in the middle of a response.
			{At: realtimesim.AtAudioDelta, N: 1, Do: realtimesim.UnknownEvent},
			{At: realtimesim.AtAudioDelta, N: 1, Do: realtimesim.Malformed},
		},
	}
	_, base := startSim(t, script)
	core, logs := observer.New(zapcore.DebugLevel)
	cfg := testConfig(base)
	cfg.Logger = zap.New(core)
	s := dial(t, cfg)

	require.NoError(t, s.CreateResponse(""))
	done, seen := next[realtime.ResponseDone](t, s)
	require.Equal(t, "completed", done.Response.Status, "the session carried on")

	errs := errorEvents(seen)
	require.Len(t, errs, 2, "one per malformed message, none for unknown events; saw %s", types(seen))
	for _, e := range errs {
		require.ErrorIs(t, e.Err, realtime.ErrMalformedEvent)
		var api *realtime.APIError
		require.False(t, errors.As(e.Err, &api))
	}
	var total int
	for _, ev := range seen {
		if d, ok := ev.(realtime.AudioDelta); ok {
			total += len(d.PCM)
		}
	}
	require.Equal(t, realtime.MSToSamples(500), total, "no audio lost around the bad messages")

	ignored := logs.FilterMessage("realtime.event.ignored").FilterField(zap.String("type", "sim.future_event"))
	require.Equal(t, 2, ignored.Len())
}

func TestDialRejectsBadKeyAndModel(t *testing.T) {
	_, base := startSim(t, realtimesim.Script{})
	cfg := testConfig(base)
	cfg.APIKey = "sk-wrong-secret-1234"
	_, err := realtime.Dial(context.Background(), withDialTimeout(cfg))
	require.ErrorIs(t, err, realtime.ErrUnauthorized)
	require.Contains(t, err.Error(), "401")
	require.Contains(t, err.Error(), "OPENAI_API_KEY")
	require.NotContains(t, err.Error(), "sk-wrong-secret-1234")

	cfg = testConfig(base)
	cfg.Model = "gpt-nonexistent"
	_, err = realtime.Dial(context.Background(), withDialTimeout(cfg))
	require.ErrorIs(t, err, realtime.ErrModelNotFound)
	require.Contains(t, err.Error(), "gpt-nonexistent")

	cfg = testConfig(base)
	cfg.APIKey = ""
	_, err = realtime.Dial(context.Background(), cfg)
	require.ErrorContains(t, err, "OPENAI_API_KEY")
	requireNoGoroutines(t, sessionGoroutines)
}

func TestDialFailsWhenSessionUpdateIsRefused(t *testing.T) {
	_, base := startSim(t, realtimesim.Script{Faults: []realtimesim.Fault{{At: realtimesim.AtSessionUpdate, Do: realtimesim.RateLimit}}})
	_, err := realtime.Dial(context.Background(), withDialTimeout(testConfig(base)))
	require.ErrorIs(t, err, realtime.ErrRateLimited)
	require.ErrorContains(t, err, "session.update refused")
}

func TestHalfOpenConnectionIsDetected(t *testing.T) {
	_, base := startSim(t, realtimesim.Script{Faults: []realtimesim.Fault{{At: realtimesim.AtConnect, Do: realtimesim.IgnorePings}}})
	cfg := testConfig(base)
	cfg.PingInterval = 50 * 1e6 // 50 ms
	s, err := realtime.Dial(context.Background(), withDialTimeout(cfg))
	require.NoError(t, err)
	defer s.Close()
	drain(t, s)
	var ce *realtime.CloseError
	require.ErrorAs(t, s.Err(), &ce)
	require.Equal(t, 1006, ce.Code)
	require.Contains(t, ce.Reason, "pong")
}

// A response cancelled before any of it was sent (the model still
// thinking) gives its scripted turn back: the next response says it, as a
// model interrupted while thinking says the same again.
func TestCancelledBeforeSpeakingGivesItsTurnBack(t *testing.T) {
	l := cancelThenRespond(t, realtimesim.AgentTurn{Text: "First line.", AudioMS: 400})
	require.Equal(t, "cancelled", l.Responses[0].Status)
	require.Zero(t, l.Responses[0].AudioSamples)
	require.Equal(t, 0, l.Responses[0].Turn)
	require.Equal(t, 0, l.Responses[1].Turn, "the cancelled response's turn is offered again")
}

// A silent turn (the model waits: no text, no tool) cancelled before it
// ran is not given back: the next response takes the turn after it, as
// the model would answer what it heard instead of waiting again.
func TestCancelledSilentTurnIsNotGivenBack(t *testing.T) {
	l := cancelThenRespond(t, realtimesim.AgentTurn{Text: ""})
	require.Equal(t, 0, l.Responses[0].Turn)
	require.Equal(t, 1, l.Responses[1].Turn, "the silent turn is not offered again")
}

// cancelThenRespond scripts first and a second line, cancels the first
// response before any of it ran, asks for another, and returns the log.
func cancelThenRespond(t *testing.T, first realtimesim.AgentTurn) realtimesim.Log {
	t.Helper()
	srv, base := startSim(t, realtimesim.Script{
		Agent:           []realtimesim.AgentTurn{first, {Text: "Second line.", AudioMS: 400}},
		ResponseDelayMS: 60_000, // no step runs before the cancel
	})
	s := dial(t, testConfig(base))

	require.NoError(t, s.CreateResponse(""))
	next[realtime.ResponseCreated](t, s)
	require.NoError(t, s.CancelResponse())
	done, _ := next[realtime.ResponseDone](t, s)
	require.Equal(t, "cancelled", done.Response.Status)
	require.Empty(t, done.Response.Output, "nothing of it was sent")

	require.NoError(t, s.CreateResponse(""))
	next[realtime.ResponseCreated](t, s)
	l := srv.Log()
	require.Len(t, l.Responses, 2)
	return l
}
