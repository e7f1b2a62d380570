// Package dialrate keeps the whole fleet's dials on one SIP trunk under
// the carrier's rate, however many workers dial.
//
// SIP carriers cap call attempts per second per trunk, often at 1 to 10,
// and answer 503 or 429 past it: a hundred dynos that each dial when they
// like would fail calls in bursts. The limit is one token bucket per trunk
// in Redis, shared by every worker, kept by a Lua script (GCRA, the
// generic cell rate algorithm: one number per trunk, the time the next
// dial is due). A dial reserves the next free slot and waits for it, so
// callers are served in the order they asked and each Redis round trip
// books exactly one dial.
//
// Invariants, and why:
//
//   - Slots are counted on Redis's clock (TIME inside the script), never a
//     worker's: dynos' clocks disagree by more than a slot's length.
//   - The fleet dials at most Burst + PerSecond × t times in any t
//     seconds, give or take the network delay between a slot and its
//     dial. A slot booked and not used (the call was cancelled while it
//     waited) is lost, never given to two dials.
//   - Dispatch slows, calls do not fail: a call task arriving while more
//     than half of MaxWait is already booked ahead is deferred without
//     spending a retry (Middleware), and a call waits for its slot before
//     its last checks (BeforeDial), so the calling-hours and do-not-call
//     checks still stand right before the phone rings. Only a call whose
//     slot would be more than MaxWait away (the deferral's bound overrun
//     by a burst of calls admitted together) is not dialled, with a reason
//     naming the rate.
package dialrate
