// Package chatsim is a local stand-in for OpenAI's chat-completions REST
// API, for tests and `make dev`. It serves POST /v1/chat/completions and
// GET /v1/models/{id} on loopback, checks the Bearer key, and answers like
// the real API:
//
//   - requests are validated as the API does: known model, at least one
//     message, and a json_schema response format whose schema, when strict,
//     follows OpenAI's structured-output rules (ValidateStrictSchema):
//     every object lists all its properties in required and sets
//     additionalProperties false, enums match their types, no unsupported
//     keywords. A violation is a 400 invalid_request_error;
//   - each accepted request takes the next scripted Reply: given content
//     (valid or not), an answer generated from the request's own schema
//     (Auto), a refusal, an answer cut off at the token limit, an API error
//     with any status (429 with Retry-After, 500 ...), a malformed body, or
//     a delay (to exercise client timeouts). Once the script runs out,
//     Script.Then answers (default Auto);
//   - errors have OpenAI's shape ({"error": {"message", "type", "param",
//     "code"}}) and never echo the key.
//
// Every request is recorded (Requests) so tests can assert what the client
// sent: the messages and the response_format schema.
//
// A Script is plain data; a scenario file for the devstack looks like:
//
//	{
//	  "replies": [
//	    {"status": 429, "retry_after_seconds": 2},
//	    {"content": "{\"summary\": \"The office confirmed.\", \"disposition\": \"interested\"}"}
//	  ],
//	  "then": {"auto": true}
//	}
//
// It is a test double: it listens on loopback only, and the worker's
// configuration refuses a loopback OPENAI_BASE_URL when APP_ENV=production.
package chatsim
