package realtime

import "encoding/json"

// Client events of the GA protocol, as listed at
// https://developers.openai.com/api/reference/resources/realtime/client-events.
// The GA shape differs from the beta one: the session has type "realtime",
// audio settings live under audio.input / audio.output, and formats are
// objects ({"type":"audio/pcm","rate":24000}) rather than "pcm16".

type sessionUpdateEvent struct {
	Type    string        `json:"type"` // session.update
	EventID string        `json:"event_id,omitempty"`
	Session sessionConfig `json:"session"`
}

type sessionConfig struct {
	Type             string      `json:"type"` // always "realtime"
	Instructions     string      `json:"instructions"`
	OutputModalities []string    `json:"output_modalities"`
	Audio            audioConfig `json:"audio"`
	Tools            []toolJSON  `json:"tools"`
	ToolChoice       string      `json:"tool_choice"`
}

type audioConfig struct {
	Input  audioInput  `json:"input"`
	Output audioOutput `json:"output"`
}

type audioFormat struct {
	Type string `json:"type"` // audio/pcm
	Rate int    `json:"rate"` // 24000
}

var pcm24k = audioFormat{Type: "audio/pcm", Rate: SampleRate}

type audioInput struct {
	Format        audioFormat    `json:"format"`
	Transcription *transcription `json:"transcription"` // null turns it off
	TurnDetection *turnDetection `json:"turn_detection"`
}

type transcription struct {
	Model string `json:"model"`
}

type turnDetection struct {
	Type              string  `json:"type"` // server_vad
	Threshold         float64 `json:"threshold"`
	PrefixPaddingMS   int     `json:"prefix_padding_ms"`
	SilenceDurationMS int     `json:"silence_duration_ms"`
	IdleTimeoutMS     *int    `json:"idle_timeout_ms,omitempty"`
	CreateResponse    bool    `json:"create_response"`
	InterruptResponse bool    `json:"interrupt_response"`
}

type audioOutput struct {
	Format audioFormat `json:"format"`
	Voice  string      `json:"voice"`
}

type toolJSON struct {
	Type        string          `json:"type"` // function
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters"`
}

var emptyObjectSchema = json.RawMessage(`{"type":"object","properties":{}}`)

func newSessionConfig(c Config) sessionConfig {
	td := &turnDetection{
		Type:              "server_vad",
		Threshold:         c.VAD.Threshold,
		PrefixPaddingMS:   c.VAD.PrefixPaddingMS,
		SilenceDurationMS: c.VAD.SilenceDurationMS,
		CreateResponse:    !c.VAD.NoAutoResponse,
		InterruptResponse: !c.VAD.NoInterrupt,
	}
	if c.VAD.IdleTimeoutMS > 0 {
		ms := c.VAD.IdleTimeoutMS
		td.IdleTimeoutMS = &ms
	}
	var tr *transcription
	if !c.NoInputTranscription {
		tr = &transcription{Model: c.InputTranscriptionModel}
	}
	tools := make([]toolJSON, 0, len(c.Tools))
	for _, t := range c.Tools {
		p := t.Parameters
		if len(p) == 0 {
			p = emptyObjectSchema
		}
		tools = append(tools, toolJSON{Type: "function", Name: t.Name, Description: t.Description, Parameters: p})
	}
	return sessionConfig{
		Type:             "realtime",
		Instructions:     c.Instructions,
		OutputModalities: []string{"audio"},
		Audio: audioConfig{
			Input:  audioInput{Format: pcm24k, Transcription: tr, TurnDetection: td},
			Output: audioOutput{Format: pcm24k, Voice: c.Voice},
		},
		Tools:      tools,
		ToolChoice: "auto",
	}
}

type responseCreateEvent struct {
	Type     string          `json:"type"` // response.create
	EventID  string          `json:"event_id,omitempty"`
	Response *responseParams `json:"response,omitempty"`
}

type responseParams struct {
	// Instructions replace the session instructions for this response only.
	Instructions string `json:"instructions,omitempty"`
}

type responseCancelEvent struct {
	Type    string `json:"type"` // response.cancel
	EventID string `json:"event_id,omitempty"`
}

type itemCreateEvent struct {
	Type    string     `json:"type"` // conversation.item.create
	EventID string     `json:"event_id,omitempty"`
	Item    createItem `json:"item"`
}

type createItem struct {
	Type   string `json:"type"` // function_call_output
	CallID string `json:"call_id"`
	Output string `json:"output"`
}

type itemTruncateEvent struct {
	Type         string `json:"type"` // conversation.item.truncate
	EventID      string `json:"event_id,omitempty"`
	ItemID       string `json:"item_id"`
	ContentIndex int    `json:"content_index"`
	AudioEndMS   int    `json:"audio_end_ms"`
}

// appendAudioEvent appends input_audio_buffer.append to dst, built by
// hand: it is the one event sent 50 times a second, and base64 needs no
// JSON escaping.
func appendAudioEvent(dst []byte, pcm []int16) []byte {
	const head = `{"type":"input_audio_buffer.append","audio":"`
	dst = append(dst, head...)
	dst = appendPCM16Base64(dst, pcm)
	return append(dst, '"', '}')
}
