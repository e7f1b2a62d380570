// Package fleet is what each worker dyno does as one of many: it says
// which dyno it is, how many calls it holds and whether it is draining
// (Member, a presence record in Redis), refuses new calls while the
// scaler drains it, and checks the fleet's connection budgets against the
// managed services' limits (Budgets, for `worker verify fleet`).
//
// Draining is how the formation scaler (package scaler) shrinks the fleet
// without cutting a call: Heroku stops the highest-numbered dynos of a
// process type with SIGTERM, and a worker that is stopped ends its live
// calls as interrupted. Before it shrinks the formation, the scaler sets a
// drain flag for each dyno that will stop; each worker reads its own flag
// on every beat and from then on defers call tasks without spending a
// retry (another dyno takes them). The scaler shrinks the formation once
// every draining dyno has reported no live call, or after a bound.
//
// Invariants, and why:
//
//   - A Member's report "draining, no live call" is final: the flag and the
//     live-call count change under one lock, so no call task can start on
//     a dyno after it reported itself drained.
//   - Presence expires by itself (three beats): a dyno that died or was
//     stopped drops out without anyone cleaning up, and the scaler reads a
//     missing report as a dyno with no calls.
//   - Only the call tasks are refused while draining; analyses and
//     dispatch rounds go on, and a call already running is never touched.
package fleet
