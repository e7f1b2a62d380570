// Package recording records a call as one two-channel audio file in S3:
// the callee on the left channel, the agent on the right, both on the
// call's wall-clock timeline.
//
// # Format
//
// Ogg Opus (RFC 7845), stereo, 32 kbit/s (variable; speech with pauses
// averages about 170 KiB per minute, 10 MB per hour), libopus in VoIP
// mode, channel mapping family 0. Opus is the codec built for speech at low
// bitrates and is already linked for WebRTC; in an Ogg container it plays
// in browsers, VLC, ffmpeg and the usual audio tools with nothing to
// install. It is over 30 times smaller than the same audio as 24 kHz 16-bit
// stereo WAV (5.6 MB per minute), which matters for recordings kept for
// months. Coupled stereo still keeps the sides apart (the other side leaks
// in at about -45 dB), so each channel can be listened to or transcribed
// alone.
//
// # Timeline
//
// CalleeAudio and AgentPlayed take PCM stamped with the wall-clock time it
// was heard. A side's chunks are stitched end to end, so arrival jitter
// and bursts add no clicks or holes; the stamps steer: after a pause a
// chunk goes exactly at its stamp (silence fills the gap), and lost frames
// or a drifting sender clock are corrected within a fraction of a second. The agent's voice therefore appears where it was played:
// a reply cut by barge-in stops where the callee heard it stop. One mixer
// goroutine owns all audio state. It waits a jitter window for the other
// side's audio of the same moment, then encodes 20 ms stereo frames.
// Callers never block: input goes through a bounded queue, and what does
// not fit is dropped and counted in the Result.
//
// # Storage, memory and crashes
//
// The Ogg stream is cut into segments of SegmentDuration (30 s) on page
// boundaries and each is stored as soon as it is sealed, as
// recordings-partial/<env>/<campaign>/<yyyy>/<mm>/<dd>/<attempt>/<n>.ogg,
// so the segments concatenated in order are one valid stream. After each
// one the recorder calls OnPartial, and the call flow writes where the
// segments are into the call document. If the worker dies, the stored
// segments lack at most the last segment (30 s), the jitter window and
// one upload's worth of audio: within the 60 s the service promises
// (MaxSegmentDuration leaves room for the jitter window and the upload).
//
// Close joins the segments, read back one at a time, and the tail still in
// memory into recordings/<env>/<campaign>/<yyyy>/<mm>/<dd>/<attempt>.ogg
// with one streaming upload, then deletes the segments: one final object,
// no leftovers (the bucket's lifecycle rule expires recordings-partial/
// after 7 days in case a delete fails; in a versioned bucket a deleted
// segment stays as a noncurrent version until the bucket's noncurrent
// rule removes it). Keeping the segments in S3 rather
// than on local disk means nothing of the call is ever at rest
// unencrypted, and a crash loses nothing that was already uploaded.
//
// Memory per recording is the current segment (about 130 kB) plus the
// encoder and the jitter window: about 0.4 MB live, the same for a 5- and
// a 30-minute call (BenchmarkPeakHeap). Close adds one upload part. While
// storage is unavailable, sealed segments wait in memory and are retried
// with backoff, up to MaxPending (one upload part, 35 minutes of audio or
// more); past that the recording stops and says so rather than grow.
// Every object is written with SSE-S3 (AES256), content type audio/ogg
// and metadata naming the attempt, campaign and environment.
package recording
