// Package call turns one call:outbound task into at most one phone call and
// its complete record.
//
// Read it in this order:
//
//   - handler.go: the task. Inline one-off calls get their attempt written
//     first; outside their calling hours they are not claimed but wait,
//     with the reason on the document, for a task scheduled at the next
//     opening (no retry spent). Then the attempt is claimed with a fence
//     token (a lost claim does nothing) and handed to the Runner.
//   - runner.go: one call from claim to wrap-up. The do-not-call list is
//     checked again and the prompt rendered (a missing variable fails the
//     attempt before any phone rings); the room is created, the agent takes
//     its seat and the model session is connected, all before dialing, so
//     that a broken LiveKit or OpenAI never rings a phone and the greeting
//     starts the moment the callee answers; then the dial, the
//     conversation, the hang-up, and one terminal status with its reason.
//     Right before the dial the law's calling hours (08:00–21:00 where the
//     number rings) are checked by the wall clock, whatever path led
//     there (hours.go).
//   - conversation.go: the live call, one loop owning all of its state:
//     model events, the agent's playout, barge-in, timers (maximum
//     duration, silence), the polite ways to end and the abrupt ones.
//   - tools.go: what the model's tool calls do.
//   - voice.go, transcript.go, vad.go: the agent audio the callee
//     actually heard (for truncation, the recording and usage), transcript
//     turns with offsets, and the optional local barge-in detector.
//   - keeper.go: the call document's writer while the call is live
//     (transcript turns, tool calls, the lease), off the audio path.
//   - recorder.go: the worker's recordings. One spool per process
//     (internal/recording) holds what storage has not taken, past the
//     call's end; the factory starts each answered call's recorder, and at
//     hang-up the call document says complete, partial or pending_upload.
//     After the call has ended, recording fields are written only through
//     store.SettleRecording, which cannot undo the terminal status.
//
// Every exit ends the same way: the callee removed and the room deleted on
// a fresh bounded context, the recording closed, the model session closed,
// one terminal status with a reason written under the claim's fence, and
// call:analyze enqueued. Run returns nil once a call was placed, so asynq
// never redials it.
package call
