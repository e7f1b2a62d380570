// Package realtimesim is a local stand-in for the OpenAI Realtime API, for
// tests and `make dev`. It serves GET /v1/models/{id} and the WebSocket
// /v1/realtime on loopback, checks the Bearer key, and speaks the GA
// protocol at the event level:
//
//   - session.created on connect; session.update is validated like the GA
//     server (session.type "realtime", no beta fields, audio/pcm at 24 kHz)
//     and answered with session.updated carrying the merged configuration;
//   - response.create → response.created, rate_limits.updated, the output
//     item, audio deltas of real PCM16 (a deterministic voice-like waveform,
//     or espeak-ng speech) with transcript deltas alongside, the done events
//     and response.done with usage; fast by default, real time when Paced;
//   - an energy VAD over the client's audio (20 ms frames, RMS threshold,
//     the session's silence_duration_ms as hangover): speech_started,
//     speech_stopped, committed, the input transcription from the script,
//     then the next response when create_response is on, and cancellation
//     of a running response when interrupt_response is on (a response
//     cancelled before any of it was sent gives its scripted turn back to
//     the next one, as a model interrupted while thinking says the same
//     again);
//   - scripted function calls that wait for function_call_output and
//     response.create; conversation.item.truncate checked against the audio
//     actually sent; response.cancel → response.done "cancelled";
//   - scripted faults (rate limit, server error, failed response, session
//     expiry, dropped socket, close frame, malformed or unknown events,
//     ignored pings).
//
// Everything clients send is recorded (Log, WaitFor) for assertions.
//
// A Script is plain data; a scenario file for the devstack looks like:
//
//	{
//	  "agent": [
//	    {"text": "Hello, this is DocShield calling about a records request."},
//	    {"text": "Thank you, goodbye.", "tool": {"name": "end_call", "arguments": {"reason": "completed"}}}
//	  ],
//	  "callee": ["Hi, this is the front desk."],
//	  "response_delay_ms": 300,
//	  "paced": true
//	}
//
// It is a test double: it listens on loopback only, and the worker's
// configuration refuses a loopback OPENAI_BASE_URL when APP_ENV=production.
package realtimesim
