// Package realtime is the worker's client for the OpenAI Realtime API (GA
// protocol) over WebSocket: one Session per phone call.
//
// Protocol references, checked when this was written:
//   - connection: wss://api.openai.com/v1/realtime?model=<model> with
//     "Authorization: Bearer <key>" and no OpenAI-Beta header
//     (https://developers.openai.com/api/docs/guides/realtime-websocket)
//   - client events (session.update with session.type "realtime" and
//     audio.input/audio.output, input_audio_buffer.append,
//     conversation.item.create, conversation.item.truncate, response.create,
//     response.cancel):
//     https://developers.openai.com/api/reference/resources/realtime/client-events
//   - server events (response.output_audio.delta and
//     response.output_audio_transcript.* — the beta names were
//     response.audio.* — input_audio_buffer.speech_started/stopped/committed,
//     conversation.item.input_audio_transcription.completed,
//     response.function_call_arguments.done, rate_limits.updated, error):
//     https://developers.openai.com/api/reference/resources/realtime/server-events
//
// A call uses a Session like this:
//
//	s, err := realtime.Dial(ctx, cfg)       // session.update → session.updated
//	s.CreateResponse(greeting)              // the agent speaks first
//	go feed(s.SendAudio)                    // callee PCM, 24 kHz mono, as it arrives
//	for ev := range s.Events() {            // closed when the session ends
//		switch e := ev.(type) {
//		case realtime.AudioDelta:           // play e.PCM; report with s.MarkPlayed
//		case realtime.SpeechStarted:        // barge-in: stop playout, s.Interrupt(playing)
//		case realtime.FunctionCall:         // validate, act, s.SendToolResult
//		case realtime.ErrorEvent:           // errors.Is(e.Err, realtime.ErrRateLimited) ...
//		}
//	}
//	err = s.Err()                           // why it ended (nil after Close)
//
// SendAudio gathers the callee's 20 ms chunks into messages of
// Config.InputBatch (40 ms by default): what a message costs (JSON, a
// WebSocket write, a wake-up of the writer) does not depend on its size.
// A batch the chunks stop filling goes out on its own 10 ms after that.
//
// Errors from the API arrive as ErrorEvent and leave the session running,
// except session expiry, after which the server closes the socket; Err then
// matches both ErrSessionExpired and ErrClosed. Unknown event types are
// logged at debug level and skipped; a message that does not decode is an
// ErrorEvent matching ErrMalformedEvent, never a crash.
//
// Package realtimesim is a local server speaking the same protocol, used by
// the tests and the devstack.
package realtime
