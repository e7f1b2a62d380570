// Package scaler sizes the worker formation on Heroku from the calls
// waiting and running, and never cuts a call doing it.
//
// Heroku's own autoscaling covers only web dynos on performance tiers, by
// response time; the add-ons that scale worker dynos read queue depth and
// know nothing of live calls. And on scale-down Heroku stops the
// highest-numbered dynos (worker.N first) with SIGTERM, whatever they are
// doing: a worker stopped mid-call ends it interrupted, with a goodbye.
//
// One elected worker (package elect, role "scaler") runs the Scaler. Every
// interval it reads the formation (Platform API: GET
// /apps/{app}/formation/{type}) and the calls queue, and wants
// ceil((active + pending + deferred) / calls per dyno) dynos, one more
// when the oldest waiting call has waited longer than the target latency,
// within the minimum and maximum.
//
//   - Growing is at once (PATCH with the new quantity), once the up
//     cooldown since the last change has passed.
//   - Shrinking is a drain: once the down cooldown has passed, it flags
//     the dynos that will stop (the highest numbers, as Heroku picks them)
//     in Redis; they take no new calls (package fleet) and finish theirs.
//     The formation shrinks when each of them has reported no live call,
//     or when the drain bound has passed (then the calls left are cut,
//     and the log says how many). Demand that rises during a drain, or a
//     formation changed by someone else, cancels it.
//
// The drain in progress and the time of the last change live in Redis,
// so a new leader continues a drain and honours the cooldowns. Off unless
// AUTOSCALE=true.
package scaler
