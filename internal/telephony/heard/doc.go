// Package heard is a test phone's ear: the record of the audio a simulated
// callee heard from the agent, kept so tests can say when the agent spoke,
// for how long, how loud, and how fast it stopped. Both of the phone
// network's stand-ins use it: calleesim (a LiveKit participant, whose
// audio arrives as a continuous stream) and sipphone (a SIP handset, whose
// RTP packets are placed by timestamp).
//
//	r := heard.New(8000, heard.DefaultSpeechThreshold, 10*time.Second)
//	r.Append(time.Now(), pcm)                   // a stream without gaps
//	r.Add(time.Now(), pos, pcm)                 // or placed by the sender's clock
//	at, _ := r.WaitQuiet(ctx, since, 700*time.Millisecond) // the agent's turn ended at at
//	spans := r.Spans(200 * time.Millisecond)    // the agent's utterances
//
// # Invariants
//
//   - Positions are the sender's clock: a frame's Pos counts the samples
//     of the stream before it, so spans, durations and quiet are measured
//     in stream time, immune to the bursty arrival a busy machine causes.
//     Arrival times (At) are for latency only.
//   - Frames are kept in arrival order, and positions only grow: a frame
//     behind the stream (reordered or duplicated) is counted as late and
//     not placed; a frame ahead of it leaves a Gap, which the kept audio
//     holds as silence.
//   - Levels are kept for every frame (a few bytes per 20 ms); raw audio
//     only up to the bound given to New, so a long call stays small.
//   - One goroutine writes (Add, Append); any goroutine reads, under one
//     lock, and gets copies. Waits wake on every frame added, never on a
//     timer, and end with their context.
package heard
