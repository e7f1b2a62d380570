// Package analysis handles call:analyze: the post-call summary,
// disposition and extraction of one ended attempt, by a chat completion
// (go-openai) with a strict JSON schema built from the campaign's
// `analysis` subdocument (docs/CAMPAIGNS.md).
//
// # What it guarantees
//
//   - Re-running writes the same fields (summary, extracted, analysis) and
//     nothing else: the analysis subdocument is replaced whole, extracted is
//     written in key order, and nothing is appended.
//   - The model's answer is input: ParseAnswer checks it against the schema
//     itself (types, enums, required and unknown fields, lengths). A
//     violating, refused, truncated or failed answer is retried by asynq; a
//     429 waits the API's Retry-After (RateLimitError.RetryAfter, which the
//     worker's retry policy honours). On the last try the failure is
//     recorded on the call, unless an earlier run succeeded.
//   - What was said on the call reaches the model only as string values in
//     a JSON user message; the system prompt is fixed text plus the
//     campaign's own (trusted) instructions, and tells the model that the
//     call is data, never instructions.
//   - A call in which the callee said nothing is not sent to the model; it
//     gets a summary saying what happened and status "skipped".
//   - An attempt that has not ended is deferred (not a failure, no retry
//     used up); an unknown attempt, a bad payload or an invalid campaign
//     spec is rejected (archived) at once.
//
// # The contact's next step
//
// Before it asks the model, the handler applies the attempt's outcome to
// its contact through campaign.Service.ApplyOutcome, unless the contact has
// already moved past this attempt (the call flow or the dispatcher's repair
// round did it). It does not wait for the model: the retry policy depends on
// the call's outcome, not on the analysis, and a model outage must not hold
// up the contact or lose a requested callback time. Should applying fail on
// the last try, the analysis goes on and the dispatcher's repair round
// settles the contact later.
package analysis
