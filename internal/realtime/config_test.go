package realtime

import (
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRealtimeURL(t *testing.T) {
	cases := map[string]string{
		"https://api.openai.com/v1":  "wss://api.openai.com/v1/realtime?model=gpt-realtime",
		"https://api.openai.com/v1/": "wss://api.openai.com/v1/realtime?model=gpt-realtime",
		"http://127.0.0.1:8080/v1":   "ws://127.0.0.1:8080/v1/realtime?model=gpt-realtime",
		"wss://proxy.example/openai": "wss://proxy.example/openai/realtime?model=gpt-realtime",
	}
	for base, want := range cases {
		got, err := realtimeURL(base, "gpt-realtime")
		require.NoError(t, err, base)
		require.Equal(t, want, got)
	}
	for _, bad := range []string{"ftp://x/v1", "api.openai.com/v1", "https:///v1", "://"} {
		_, err := realtimeURL(bad, "gpt-realtime")
		require.ErrorContains(t, err, "OPENAI_BASE_URL", bad)
	}
	_, err := realtimeURL("https://api.openai.com/v1", "")
	require.ErrorContains(t, err, "OPENAI_REALTIME_MODEL")
}

func TestConfigValidateNamesFields(t *testing.T) {
	c := Config{
		VAD:   VAD{Threshold: 2},
		Tools: []Tool{{Name: "a"}, {Name: "a"}, {Name: ""}, {Name: "b", Parameters: json.RawMessage(`[1]`)}},
	}.withDefaults()
	err := c.validate()
	for _, want := range []string{"Config.APIKey (OPENAI_API_KEY)", "Config.VAD.Threshold", `Config.Tools[1].Name "a" is a duplicate`,
		"Config.Tools[2].Name is empty", "Config.Tools[3].Parameters (b)"} {
		require.ErrorContains(t, err, want)
	}
	c = Config{APIKey: "k"}.withDefaults()
	require.NoError(t, c.validate())
	require.Equal(t, DefaultModel, c.Model)
	require.Equal(t, DefaultVoice, c.Voice)
}

func TestSessionConfigShape(t *testing.T) {
	c := Config{APIKey: "k", Instructions: "hi", NoInputTranscription: true,
		VAD: VAD{NoAutoResponse: true, IdleTimeoutMS: 8000}, Tools: []Tool{{Name: "opt_out"}}}.withDefaults()
	b, err := json.Marshal(newSessionConfig(c))
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	audio := m["audio"].(map[string]any)
	in := audio["input"].(map[string]any)
	require.Nil(t, in["transcription"], "null turns transcription off")
	td := in["turn_detection"].(map[string]any)
	require.Equal(t, false, td["create_response"])
	require.Equal(t, true, td["interrupt_response"])
	require.Equal(t, 8000.0, td["idle_timeout_ms"])
	tool := m["tools"].([]any)[0].(map[string]any)
	require.Equal(t, map[string]any{"type": "object", "properties": map[string]any{}}, tool["parameters"])
	require.Equal(t, "auto", m["tool_choice"])
}

func TestPCMWireFormat(t *testing.T) {
	// Little-endian 16-bit: 1 → 01 00, -2 → FE FF.
	require.Equal(t, "AQD+/w==", string(appendPCM16Base64(nil, []int16{1, -2})))
	pcm := []int16{0, 1, -1, 32767, -32768, 12345}
	back, err := decodePCM16Base64(appendPCM16Base64(nil, pcm), nil)
	require.NoError(t, err)
	require.Equal(t, pcm, back)
	long := make([]int16, 3*SampleRate/25) // past the stack buffer
	for i := range long {
		long[i] = int16(i * 37)
	}
	back, err = decodePCM16Base64(appendPCM16Base64(nil, long), make([]byte, 8))
	require.NoError(t, err)
	require.Equal(t, long, back)

	ev := appendAudioEvent(nil, []int16{1, -2})
	var m struct{ Type, Audio string }
	require.NoError(t, json.Unmarshal(ev, &m))
	require.Equal(t, "input_audio_buffer.append", m.Type)
	raw, err := base64.StdEncoding.DecodeString(m.Audio)
	require.NoError(t, err)
	require.Equal(t, []byte{1, 0, 0xfe, 0xff}, raw)

	require.Equal(t, 1000, SamplesToMS(24000))
	require.Equal(t, 0, SamplesToMS(23), "rounds down: never truncate beyond what arrived")
	require.Equal(t, 2400, MSToSamples(100))
}
