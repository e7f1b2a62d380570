package realtime

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// Examples follow the GA server-event reference,
// https://developers.openai.com/api/reference/resources/realtime/server-events.
func TestDecodeKnownEvents(t *testing.T) {
	cases := []struct {
		json string
		want Event
	}{
		{`{"type":"input_audio_buffer.speech_started","event_id":"e1","audio_start_ms":1000,"item_id":"item_1"}`,
			SpeechStarted{ItemID: "item_1", AudioStartMS: 1000}},
		{`{"type":"input_audio_buffer.speech_stopped","event_id":"e2","audio_end_ms":2000,"item_id":"item_1"}`,
			SpeechStopped{ItemID: "item_1", AudioEndMS: 2000}},
		{`{"type":"input_audio_buffer.committed","event_id":"e3","previous_item_id":"item_0","item_id":"item_1"}`,
			InputCommitted{ItemID: "item_1", PreviousItemID: "item_0"}},
		{`{"type":"conversation.item.input_audio_transcription.completed","event_id":"e4","item_id":"item_1","content_index":0,"transcript":"Hello, how are you?","usage":{"type":"duration","seconds":1.2}}`,
			InputTranscript{ItemID: "item_1", Transcript: "Hello, how are you?"}},
		{`{"type":"response.output_audio_transcript.delta","event_id":"e5","response_id":"resp_1","item_id":"item_2","output_index":0,"content_index":0,"delta":"Hello"}`,
			TranscriptDelta{ResponseID: "resp_1", ItemID: "item_2", Delta: "Hello"}},
		{`{"type":"response.output_audio_transcript.done","event_id":"e6","response_id":"resp_1","item_id":"item_2","output_index":0,"content_index":0,"transcript":"Hello there."}`,
			TranscriptDone{ResponseID: "resp_1", ItemID: "item_2", Transcript: "Hello there."}},
		{`{"type":"response.output_audio.done","event_id":"e7","response_id":"resp_1","item_id":"item_2","output_index":0,"content_index":0}`,
			AudioDone{ResponseID: "resp_1", ItemID: "item_2"}},
		{`{"type":"response.function_call_arguments.done","event_id":"e8","response_id":"resp_1","item_id":"item_3","output_index":1,"call_id":"call_1","name":"end_call","arguments":"{\"reason\":\"done\"}"}`,
			FunctionCall{ResponseID: "resp_1", ItemID: "item_3", OutputIndex: 1, CallID: "call_1", Name: "end_call", Arguments: `{"reason":"done"}`}},
		{`{"type":"conversation.item.truncated","event_id":"e9","item_id":"item_2","content_index":0,"audio_end_ms":1500}`,
			ItemTruncated{ItemID: "item_2", AudioEndMS: 1500}},
		{`{"type":"rate_limits.updated","event_id":"e10","rate_limits":[{"name":"requests","limit":1000,"remaining":999,"reset_seconds":60}]}`,
			RateLimits{Limits: []RateLimit{{Name: "requests", Limit: 1000, Remaining: 999, ResetSeconds: 60}}}},
		{`{"type":"response.output_item.added","event_id":"e11","response_id":"resp_1","output_index":0,"item":{"id":"item_2","object":"realtime.item","type":"message","status":"in_progress","role":"assistant","content":[]}}`,
			OutputItemAdded{ResponseID: "resp_1", Item: Item{ID: "item_2", Type: "message", Role: "assistant", Status: "in_progress"}}},
		{`{"type":"response.output_audio.delta","event_id":"e12","response_id":"resp_1","item_id":"item_2","output_index":0,"content_index":0,"delta":"AQD+/w=="}`,
			AudioDelta{ResponseID: "resp_1", ItemID: "item_2", PCM: []int16{1, -2}}},
		{`{"type":"error","event_id":"e13","error":{"type":"invalid_request_error","code":"invalid_value","message":"Invalid value: 'x'.","param":"session.type","event_id":"evt_c1"}}`,
			ErrorEvent{&APIError{Type: "invalid_request_error", Code: "invalid_value", Message: "Invalid value: 'x'.", Param: "session.type", EventID: "evt_c1"}}},
	}
	for _, c := range cases {
		t.Run(c.want.EventType(), func(t *testing.T) {
			got, typ, err := decodeEvent([]byte(c.json))
			require.NoError(t, err)
			require.Equal(t, c.want.EventType(), typ)
			require.Equal(t, c.want, got)
		})
	}
}

// Audio deltas decode the same whichever path they take: the fast one
// (a flat object, its fields in any order) or the general one (escapes,
// nested values, a key in another case).
func TestDecodeAudioDeltaEveryWay(t *testing.T) {
	want := AudioDelta{ResponseID: "resp_1", ItemID: "item_2", PCM: []int16{1, -2}}
	for _, c := range []struct {
		raw  string
		fast bool
	}{
		{`{"type":"response.output_audio.delta","response_id":"resp_1","item_id":"item_2","delta":"AQD+/w=="}`, true},
		{`{"item_id":"item_2","delta":"AQD+/w==","type":"response.output_audio.delta","response_id":"resp_1"}`, true},
		{` {"type":"response.output_audio.delta","response_id":"resp_1","item_id":"item_2","delta":"AQD+/w=="}`, true},
		// Sorted keys and fields the event does not use, as a server
		// marshalling a map sends them.
		{`{"content_index":0,"delta":"AQD+/w==","event_id":"event_9","item_id":"item_2","output_index":0,"response_id":"resp_1","type":"response.output_audio.delta"}`, true},
		{"{\n \"type\" : \"response.output_audio.delta\",\t\"extra\":null,\"flag\":true,\"n\":-12,\"response_id\":\"resp_1\",\"item_id\":\"item_2\",\"delta\":\"AQD+/w==\"}\r\n", true},
		{`{"type":"response.output_audio.delta","response_id":"resp_1","item_id":"item_2","delta":"AQD+\/w=="}`, false},
		{`{"type":"response.output_audio.delta","extra":{"a":[1]},"response_id":"resp_1","item_id":"item_2","delta":"AQD+/w=="}`, false},
		{`{"type":"response.output_audio.delta","Response_ID":"resp_1","item_id":"item_2","delta":"AQD+/w=="}`, false},
		{`{"type":"response.output_audio.delta","response_id":"resp_\u0031","item_id":"item_2","delta":"AQD+/w=="}`, false},
	} {
		_, fast := decodeAudioDelta([]byte(c.raw))
		require.Equal(t, c.fast, fast, "fast path for %s", c.raw)
		got, typ, err := decodeEvent([]byte(c.raw))
		require.NoError(t, err, c.raw)
		require.Equal(t, "response.output_audio.delta", typ)
		require.Equal(t, want, got, c.raw)
	}
	// Looks like a delta at first, but a later type says otherwise: the
	// general path decides (the last key wins in encoding/json).
	got, typ, err := decodeEvent([]byte(`{"type":"response.output_audio.delta","type":"response.output_audio.done","item_id":"item_2"}`))
	require.NoError(t, err)
	require.Equal(t, "response.output_audio.done", typ)
	require.Equal(t, AudioDone{ItemID: "item_2"}, got)
}

// Whatever the fast path decodes, the general path decodes the same way:
// the fast path only ever saves time. The seeds are the shapes above and
// the malformed deltas below; go test -fuzz FuzzDecodeAudioDelta explores.
func FuzzDecodeAudioDelta(f *testing.F) {
	for _, seed := range []string{
		`{"type":"response.output_audio.delta","response_id":"resp_1","item_id":"item_2","delta":"AQD+/w=="}`,
		`{"content_index":3,"delta":"AQD+/w==","event_id":"e","item_id":"i","output_index":-2,"response_id":"r","type":"response.output_audio.delta"}`,
		`{"type":"response.output_audio.delta","type":"response.output_audio.done","item_id":"item_2"}`,
		`{"type":"response.output_audio.delta","delta":"AQD+"}`,
		`{"type":"response.output_audio.delta","delta":null}`,
		`{"type":"response.output_audio.delta","x":true,"y":false,"z":null,"delta":""}`,
		`{}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := decodeAudioDelta(data)
		if !ok {
			return
		}
		ev, typ, err := decodeGeneral(data)
		require.NoError(t, err)
		require.Equal(t, audioDeltaType, typ)
		require.Equal(t, ev, fast)
	})
}

func TestDecodeResponseDone(t *testing.T) {
	raw := `{"type":"response.done","event_id":"e","response":{"id":"resp_1","object":"realtime.response","status":"cancelled",
	"status_details":{"type":"cancelled","reason":"turn_detected"},
	"output":[{"id":"item_2","type":"message","role":"assistant","status":"incomplete"}],
	"usage":{"total_tokens":300,"input_tokens":200,"output_tokens":100,
	  "input_token_details":{"text_tokens":150,"audio_tokens":50,"cached_tokens":0},
	  "output_token_details":{"text_tokens":20,"audio_tokens":80}}}}`
	ev, _, err := decodeEvent([]byte(raw))
	require.NoError(t, err)
	done := ev.(ResponseDone)
	require.Equal(t, "cancelled", done.Response.Status)
	require.Equal(t, "turn_detected", done.Response.StatusDetails.Reason)
	require.Equal(t, 80, done.Response.Usage.OutputTokenDetails.AudioTokens)
	require.Equal(t, 50, done.Response.Usage.InputTokenDetails.AudioTokens)
	require.Equal(t, 300, done.Response.Usage.TotalTokens)
	require.NoError(t, done.Response.Err(), "cancelled is not a failure")

	failed := Response{Status: "failed", StatusDetails: &StatusDetails{Type: "failed",
		Error: &APIError{Type: "rate_limit_error", Code: "rate_limit_exceeded"}}}
	require.ErrorIs(t, failed.Err(), ErrRateLimited)
	require.ErrorIs(t, Response{Status: "failed"}.Err(), ErrServer)
}

func TestDecodeIgnoresUnknownAndBetaEvents(t *testing.T) {
	for _, raw := range []string{
		`{"type":"conversation.item.added","item":{}}`,
		`{"type":"response.content_part.added"}`,
		`{"type":"response.audio.delta","delta":"AAAA"}`, // beta name: not GA
		`{"type":"something.new.in.2027","x":1}`,
	} {
		ev, typ, err := decodeEvent([]byte(raw))
		require.NoError(t, err, raw)
		require.Nil(t, ev, raw)
		require.NotEmpty(t, typ)
	}
}

func TestDecodeMalformed(t *testing.T) {
	for _, raw := range []string{
		`{"type":"response.output_audio.delta","delta":`,
		`[1,2,3]`,
		`{"no_type":true}`,
		`{"type":"response.output_audio.delta","delta":"not base64!"}`,
		`{"type":"response.output_audio.delta","delta":"AQD+"}`, // 3 bytes: not whole samples
		`{"type":"response.output_audio.delta","delta":null}`,
		`{"type":"response.output_audio.delta","delta":12}`,
		`{"type":"response.output_audio.delta","delta":"AQ\u00"}`,
		`{"type":"error"}`,
		`{"type":"input_audio_buffer.speech_started","audio_start_ms":"soon"}`,
	} {
		ev, _, err := decodeEvent([]byte(raw))
		require.Nil(t, ev, raw)
		require.ErrorIs(t, err, ErrMalformedEvent, raw)
		var m *MalformedError
		require.True(t, errors.As(err, &m))
		require.NotEmpty(t, m.Reason)
	}
}
