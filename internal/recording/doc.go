// Package recording records a call as one two-channel audio file in S3:
// the callee on the left channel, the agent on the right, both on the
// call's wall-clock timeline.
//
// # Format
//
// Ogg Opus (RFC 7845) with two mono streams, channel mapping family 1:
// stream 0, the callee, plays on the left channel; stream 1, the agent, on
// the right. Both sides already travel as 20 ms Opus packets: the agent's
// are encoded once, for the room, by the telephony player; the callee's
// arrive from the room. The recorder writes those packets as they are,
// one pair per 20 ms Ogg packet (a multistream packet: the callee's in the
// self-delimiting framing, then the agent's), so recording a call costs
// almost no CPU: no decode, no mix, no encode (BenchmarkRecordCallMinute:
// about 15 ms of CPU per call-minute, against 440 ms when it mixed both
// sides' PCM and encoded a stereo stream itself). The price is size:
// the senders' bitrates (the callee's about 28 kbit/s while speaking, the
// agent's 32 kbit/s CELT) instead of one 32 kbit/s stereo stream, about
// 200-230 KiB per call-minute against 170. Where a side sent nothing for a slot (silence, a lost
// packet, before its first word) the slot holds a 20 ms packet of digital
// silence. The streams are uncoupled, so each side is exactly what was
// sent or heard, with nothing of the other in it.
//
// A sender whose packets do not fit the 20 ms grid (40 or 60 ms SILK
// frames, 10 ms frames, stereo) is the exception: its packets are decoded
// and encoded again as 20 ms mono packets (reencoder), for that side only.
// Packets of several 20 ms frames are split.
//
// In an Ogg container Opus plays in browsers, VLC, ffmpeg and the usual
// audio tools with nothing to install (the tests check libopusfile,
// ffmpeg and Chromium's <audio> and Web Audio decoding). It is over 20
// times smaller than the same audio as 24 kHz 16-bit stereo WAV (5.6 MB
// per minute), which matters for recordings kept for months.
//
// # Timeline
//
// CalleePacket and AgentPacket take packets stamped with the wall-clock
// time they arrived or were sent. A side's packets are stitched end to end
// on the 20 ms grid, so arrival jitter and bursts add no holes; the stamps
// steer: after a pause a packet goes into the slot of its stamp (silence
// fills the gap), and lost packets or a drifting sender clock are
// corrected within a fraction of a second. The agent's voice therefore
// appears where it was sent, which is where the callee heard it: a reply
// cut by barge-in stops where the callee heard it stop, since the player
// sent silence from there on. One mixer goroutine owns all of it. It waits
// a jitter window for the other side's packet of the same moment, then
// writes the slot. Callers never block: input goes through a bounded
// queue, and what does not fit is dropped and counted in the Result.
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
// Finish joins the segments, read back one at a time, and the tail into
// recordings/<env>/<campaign>/<yyyy>/<mm>/<dd>/<attempt>.ogg with one
// streaming upload, then deletes the segments: one final object, no
// leftovers (the bucket's lifecycle rule expires recordings-partial/
// after 7 days in case a delete fails; in a versioned bucket a deleted
// segment stays as a noncurrent version until the bucket's noncurrent
// rule removes it). Keeping the segments in S3 rather than on local disk
// means a crash loses nothing that was already uploaded.
//
// # The spool: audio outlives the call, never the process's memory cap
//
// Every recorder belongs to the process's one Spool, and every sealed
// segment and the tail go through it: a job per recording (one goroutine,
// owned by the spool) stores them in order and makes the final object.
// Storage being away never drops audio at hang-up: Finish waits up to
// CloseTimeout, then the job is detached and goes on after the call's task
// has ended, retrying with backoff (5 s between tries, 30 s once an outage
// has lasted a minute). Finish says PendingUpload, and the call document
// names the worker that holds the audio and a lease it renews; the job
// settles the outcome on the call itself (through the Ledger) once
// storage takes it. So the loss is bounded by the segment length, not by
// the outage's.
//
// The spool's memory is capped for the whole process (MemoryBytes). Past
// the cap, held audio is spilled to files sealed with AES-256-GCM under a
// key made at start and kept only in memory (the file name is the
// additional data, so files cannot be swapped): nothing of a call is at
// rest in the clear, and a spilled file is useless after a restart, which
// is fine, since what a restart recovers is what already reached storage.
// Past the disk cap too, a live recording stops (what was sealed is kept,
// the rest of the call is counted as lost). A recording storage refuses
// for GiveUpAfter (24 h) is given up: partial, with what was lost.
//
// Shutdown gives the held recordings what is left of the shutdown budget,
// then settles each one left as partial: the segments already stored stay
// noted for a later join, the rest is lost and counted.
//
// # Sweeps: a restart joins what a dead worker left
//
// The spool also sweeps, at start and every Lease/3: ended calls whose
// recording is still only segments (the worker was killed mid-call, or
// stopped while storage was away) or pending with a lapsed lease (its
// holder died) are joined by one worker per lease period, elected with a
// unique insert. The sweep finds the segments by HEAD (the worker never
// lists the bucket), sets the end-of-stream flag on the last page, writes
// the final object, deletes the segments and settles the call. Every step
// can be repeated: a sweeper that dies leaves the next period's winner to
// redo it, and a final object already made is adopted (its hash and
// length read from it).
//
// Memory per live recording is the current segment (about 240 kB) plus the
// jitter window's packets, the same for a 5- and a 30-minute call
// (BenchmarkPeakHeap). The final object streams through one
// upload part. Every object is written with SSE-S3 (AES256), content type
// audio/ogg and metadata naming the attempt, campaign and environment.
package recording
