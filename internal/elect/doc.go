// Package elect chooses one process among many through a lease in Redis,
// for the duties one process runs for the whole fleet: logging the
// cluster-wide alerts once, and the formation scaler.
//
// A lease is one key holding the holder's token, written with SET NX PX:
// whoever writes it holds it for the lease's length, and renews it every
// third of that with a script that extends the key only while it still
// holds the holder's token. A holder that dies stops renewing; the key
// expires and the next candidate to try (every third of the lease) takes
// it, so a dead leader is replaced within a lease and a third. A holder
// that stops cleanly deletes the key (again only if it is still its own),
// and a successor takes over at its next try.
//
// Invariants, and why:
//
//   - At most one process believes it leads at a time, give or take clock
//     drift. A holder counts its lease from before it sent the write that
//     took or renewed it, and gives it up locally a tenth of a lease early
//     (Leader turns false) even when Redis cannot be reached to say so:
//     by then another process may already hold the key. A holder that
//     cannot reach Redis therefore steps down rather than lead blind.
//   - The token is the owner name plus random bytes, so two processes
//     configured with the same name (one dyno's restart overlapping its
//     predecessor's shutdown) never mistake each other's lease.
//   - Leader is safe to call from any goroutine and never touches Redis:
//     callers ask it on every evaluation.
package elect
