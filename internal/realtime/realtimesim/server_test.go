package realtimesim

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/telephony/heard"
	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
)

const wait = 15 * time.Second

func start(t *testing.T, script Script, opts ...Option) (*Server, string) {
	t.Helper()
	s := New(script, opts...)
	base, err := s.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s, base
}

// rawClient speaks the wire protocol by hand, so these tests check the
// simulator itself rather than our client.
type rawClient struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialRaw(t *testing.T, base string) *rawClient {
	t.Helper()
	url := "ws" + strings.TrimPrefix(base, "http") + "/realtime?model=gpt-realtime"
	ws, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + DefaultAPIKey}})
	require.NoError(t, err)
	t.Cleanup(func() { ws.Close() })
	c := &rawClient{t, ws}
	c.next("session.created")
	return c
}

func (c *rawClient) send(v any) {
	c.t.Helper()
	require.NoError(c.t, c.ws.WriteJSON(v))
}

// next reads until an event of type typ and returns it.
func (c *rawClient) next(typ string) map[string]any {
	c.t.Helper()
	require.NoError(c.t, c.ws.SetReadDeadline(time.Now().Add(wait)))
	for {
		var m map[string]any
		require.NoError(c.t, c.ws.ReadJSON(&m), "waiting for %s", typ)
		if m["type"] == typ {
			return m
		}
	}
}

func (c *rawClient) audio(pcm []int16) {
	c.t.Helper()
	for i := 0; i < len(pcm); i += 480 {
		c.send(map[string]any{"type": "input_audio_buffer.append", "audio": encodePCM(pcm[i:min(i+480, len(pcm))])})
	}
}

func errorCode(m map[string]any) (code, param any) {
	e := m["error"].(map[string]any)
	return e["code"], e["param"]
}

func TestSessionUpdateMustBeGA(t *testing.T) {
	_, base := start(t, Script{})
	c := dialRaw(t, base)
	cases := []struct {
		session    map[string]any
		code, para string
	}{
		{map[string]any{"modalities": []string{"audio"}}, "missing_required_parameter", "session.type"},
		{map[string]any{"type": "realtime", "voice": "alloy"}, "unknown_parameter", "session.voice"},
		{map[string]any{"type": "realtime", "input_audio_format": "pcm16"}, "unknown_parameter", "session.input_audio_format"},
		{map[string]any{"type": "realtime", "audio": map[string]any{"input": map[string]any{"format": map[string]any{"type": "audio/pcm", "rate": 16000}}}},
			"invalid_value", "session.audio.input.format.rate"},
		{map[string]any{"type": "realtime", "audio": map[string]any{"output": map[string]any{"format": "pcm16"}}},
			"invalid_type", "session.audio.output.format"},
	}
	for _, cs := range cases {
		c.send(map[string]any{"type": "session.update", "event_id": "evt_1", "session": cs.session})
		code, param := errorCode(c.next("error"))
		require.Equal(t, cs.code, code, "%v", cs.session)
		require.Equal(t, cs.para, param)
	}
	c.send(map[string]any{"type": "session.update", "session": map[string]any{"type": "realtime", "instructions": "be brief",
		"audio": map[string]any{"output": map[string]any{"voice": "marin"}, "input": map[string]any{"turn_detection": nil}}}})
	up := c.next("session.updated")["session"].(map[string]any)
	require.Equal(t, "be brief", up["instructions"])
	require.Equal(t, "marin", dig(up, "audio", "output", "voice"))
	require.Equal(t, map[string]any{"type": "audio/pcm", "rate": 24000.0}, dig(up, "audio", "output", "format"), "defaults kept by the merge")
	require.Nil(t, dig(up, "audio", "input", "turn_detection"))
}

func TestHTTPErrors(t *testing.T) {
	_, base := start(t, Script{}, WithAPIKey("sk-right"))
	get := func(path, key string, hdr ...string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/models/gpt-realtime", "sk-wrong-key")
	require.Equal(t, 401, code)
	require.Contains(t, body, "invalid_api_key")
	require.NotContains(t, body, "sk-wrong-key")
	code, body = get("/models/gpt-realtime", "sk-right")
	require.Equal(t, 200, code)
	require.JSONEq(t, `{"id":"gpt-realtime","object":"model","created":1756339200,"owned_by":"system"}`, body)
	code, body = get("/models/dall-e-9", "sk-right")
	require.Equal(t, 404, code)
	require.Contains(t, body, "model_not_found")
	code, _ = get("/realtime?model=gpt-realtime", "sk-right", "OpenAI-Beta", "realtime=v1", "Connection", "Upgrade", "Upgrade", "websocket")
	require.Equal(t, 400, code, "beta protocol is refused")
	code, _ = get("/realtime?model=nope", "sk-right")
	require.Equal(t, 404, code)
}

func TestVADFindsEachUtteranceAndIgnoresClicks(t *testing.T) {
	srv, base := start(t, Script{Callee: []string{"first", "second"}, VAD: VAD{MinSpeechMS: 60}})
	c := dialRaw(t, base)
	c.send(map[string]any{"type": "session.update", "session": map[string]any{"type": "realtime",
		"audio": map[string]any{"input": map[string]any{"transcription": map[string]any{"model": "x"},
			"turn_detection": map[string]any{"type": "server_vad", "silence_duration_ms": 300, "prefix_padding_ms": 0, "create_response": false}}}}})
	c.next("session.updated")
	// A 20 ms click, then two utterances.
	c.audio(Concat(Tone(20, 1000, 9000), Silence(400), Tone(200, 300, 6000), Silence(400), Voice(500, "x"), Silence(400)))
	first := c.next("conversation.item.input_audio_transcription.completed")
	require.Equal(t, "first", first["transcript"])
	second := c.next("conversation.item.input_audio_transcription.completed")
	require.Equal(t, "second", second["transcript"])

	l := srv.Log()
	require.Len(t, l.CalleeTurns, 2, "the click is not speech")
	require.Equal(t, 420, l.CalleeTurns[0].AudioStartMS)
	require.Equal(t, 420+200+300, l.CalleeTurns[0].AudioEndMS)
	require.Equal(t, 1020, l.CalleeTurns[1].AudioStartMS)
	require.Empty(t, l.Responses, "create_response=false")
}

func TestTruncateIsCheckedAgainstSentAudio(t *testing.T) {
	srv, base := start(t, Script{Agent: []AgentTurn{{Text: "hi", AudioMS: 1000}}})
	c := dialRaw(t, base)
	c.send(map[string]any{"type": "response.create"})
	item := c.next("response.output_item.added")["item"].(map[string]any)["id"]
	c.next("response.done")
	c.send(map[string]any{"type": "conversation.item.truncate", "item_id": "nope", "content_index": 0, "audio_end_ms": 10})
	code, _ := errorCode(c.next("error"))
	require.Equal(t, "item_truncate_invalid_item_id", code)
	c.send(map[string]any{"type": "conversation.item.truncate", "item_id": item, "content_index": 0, "audio_end_ms": 1001})
	code, param := errorCode(c.next("error"))
	require.Equal(t, "invalid_value", code)
	require.Equal(t, "audio_end_ms", param)
	c.send(map[string]any{"type": "conversation.item.truncate", "item_id": item, "content_index": 0, "audio_end_ms": 1000})
	require.Equal(t, 1000.0, c.next("conversation.item.truncated")["audio_end_ms"])
	require.Len(t, srv.Log().Truncates, 3, "every truncate is recorded, valid or not")
}

func TestConnectionsRunTheScriptIndependently(t *testing.T) {
	_, base := start(t, Script{Agent: []AgentTurn{{Text: "one", AudioMS: 200}, {Text: "two", AudioMS: 200}}})
	a, b := dialRaw(t, base), dialRaw(t, base)
	for _, c := range []*rawClient{a, b} {
		c.send(map[string]any{"type": "response.create"})
		require.Equal(t, "one", c.next("response.output_audio_transcript.done")["transcript"])
		// A response.create before response.done is refused (one response
		// at a time), and on a busy machine the client can be that quick.
		c.next("response.done")
	}
	a.send(map[string]any{"type": "response.create"})
	require.Equal(t, "two", a.next("response.output_audio_transcript.done")["transcript"])
}

func TestCloseEndsLiveConnections(t *testing.T) {
	s := New(Script{Paced: true, Agent: []AgentTurn{{Text: "long", AudioMS: 20000}}})
	base, err := s.Start("127.0.0.1:0")
	require.NoError(t, err)
	c := dialRaw(t, base)
	c.send(map[string]any{"type": "response.create"})
	c.next("response.output_audio.delta")
	require.NoError(t, s.Close())
	require.NoError(t, c.ws.SetReadDeadline(time.Now().Add(wait)))
	for {
		if _, _, err := c.ws.ReadMessage(); err != nil {
			require.True(t, websocket.IsCloseError(err, websocket.CloseGoingAway) || strings.Contains(err.Error(), "EOF") ||
				strings.Contains(err.Error(), "reset"), "%v", err)
			break
		}
	}
	requireNoSimGoroutines(t)
}

func requireNoSimGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var left []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "realtimesim.(*") && !strings.Contains(g, "requireNoSimGoroutines") {
				left = append(left, g)
			}
		}
		if len(left) == 0 {
			return
		}
		require.False(t, time.Now().After(deadline), "goroutines left:\n%s", strings.Join(left, "\n\n"))
		<-time.After(5 * time.Millisecond) // poll again; bounded by deadline
	}
}

func TestStartChecks(t *testing.T) {
	_, err := New(Script{}).Start("0.0.0.0:0")
	require.ErrorContains(t, err, "not loopback")
	_, err = New(Script{Voice: "robot"}).Start("127.0.0.1:0")
	require.ErrorContains(t, err, "Script.Voice")
}

func TestScriptValidate(t *testing.T) {
	err := Script{
		Agent:  []AgentTurn{{AudioMS: -1}, {Tool: &ToolCall{Arguments: json.RawMessage(`{`)}}},
		Faults: []Fault{{At: "later", Do: "explode"}},
	}.Validate()
	for _, want := range []string{"Script.Agent[0].AudioMS", "Script.Agent[1].Tool.Name is empty", "Script.Agent[1].Tool.Arguments",
		`Script.Faults[0].At "later"`, `Script.Faults[0].Do "explode"`} {
		require.ErrorContains(t, err, want)
	}
}

func TestScriptIsData(t *testing.T) {
	const file = `{
	  "agent": [{"text": "Hello, this is DocShield.", "audio_ms": 1200},
	            {"text": "Thank you, goodbye.", "tool": {"name": "end_call", "arguments": {"reason": "completed"}}}],
	  "callee": ["Hi, front desk."],
	  "faults": [{"at": "audio_delta", "n": 5, "do": "drop"}],
	  "response_delay_ms": 300, "paced": true
	}`
	var s Script
	require.NoError(t, json.Unmarshal([]byte(file), &s))
	require.NoError(t, s.Validate())
	require.Equal(t, "end_call", s.Agent[1].Tool.Name)
	require.JSONEq(t, `{"reason":"completed"}`, string(s.Agent[1].Tool.Arguments))
	require.Equal(t, Fault{At: AtAudioDelta, N: 5, Do: Drop}, s.Faults[0])
}

func TestSynthesisedAudio(t *testing.T) {
	v := Voice(1000, "hello")
	require.Len(t, v, 24000)
	require.Equal(t, v, Voice(1000, "hello"), "deterministic")
	require.NotEqual(t, v, Voice(1000, "other text"))
	for i := 0; i+480 <= len(v); i += 480 {
		require.Greater(t, heard.RMS(v[i:i+480]), 500.0, "every frame of a turn is speech to an energy VAD (frame %d)", i/480)
	}
	tone := Tone(100, 440, 8000)
	require.InDelta(t, 8000/math.Sqrt2, heard.RMS(tone[240:len(tone)-240]), 50)
	require.Zero(t, heard.RMS(Silence(100)))

	pcm := []int16{0, 1, -1, 32767, -32768}
	back, err := decodePCM(encodePCM(pcm))
	require.NoError(t, err)
	require.Equal(t, pcm, back)
	require.Equal(t, "AQD+/w==", encodePCM([]int16{1, -2}))
}

func TestWAVAndResample(t *testing.T) {
	wav := []byte("RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x22\x56\x00\x00\x44\xac\x00\x00\x02\x00\x10\x00data\xff\xff\xff\xff\x01\x00\xfe\xff")
	pcm, rate, err := parseWAV(wav)
	require.NoError(t, err)
	require.Equal(t, 22050, rate)
	require.Equal(t, []int16{1, -2}, pcm)
	_, _, err = parseWAV([]byte("RIFF0000WAVEdata"))
	require.Error(t, err)

	in := make([]int16, 22050)
	for i := range in {
		in[i] = int16(i % 100)
	}
	require.Len(t, resample(in, 22050, 24000), 24000)
}

func TestEspeakVoice(t *testing.T) {
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Skip("espeak-ng not installed (apt-get install espeak-ng)")
	}
	pcm, err := Espeak(context.Background(), "Hello, this is DocShield calling.")
	require.NoError(t, err)
	require.Greater(t, len(pcm), SampleRate/2, "more than half a second of speech")
	require.Greater(t, heard.RMS(pcm), 500.0)

	srv := New(Script{Voice: "espeak", Agent: []AgentTurn{{Text: "Goodbye."}}})
	_, err = srv.Start("127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, srv.Close())
	require.NotEmpty(t, srv.turnAudio[0])
}
