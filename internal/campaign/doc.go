// Package campaign turns campaign documents into calls at the right times
// and each ended call into the contact's next step.
//
// # Rules that are never broken
//
//   - No call outside 08:00–21:00 in the callee's local time (LegalHours,
//     callee.go). A campaign's hours (allowed weekdays and local
//     wall-clock hours, window.go) are evaluated in the contact's IANA time
//     zone (the campaign's default when it has none); the law's 08:00–21:00
//     holds as well in every zone the contact's number may ring in
//     (phone.Zones), all of them at once when there are several. A contact
//     is called only when both hold (Calendar.ContactWindow), so a wrong
//     time_zone never lets a phone ring at night. An inline call has only
//     the law's part (LegalWindow), in its time_zone or else its number's
//     zones. A number whose zone is unknown is never called. The rule is
//     checked when an attempt is written, by CheckDial right before
//     dialing, and, for the law's part, by the call flow itself by the
//     wall clock.
//   - A number on the do-not-call list is never dialed: dispatch checks the
//     list for every contact it picks and CheckDial checks it again right
//     before dialing. OptOut adds a number at once.
//   - A contact never has two live attempts, and never more dialed attempts
//     than its campaign's policy allows (retry.go), counting the larger of
//     its attempts counter (which a backend may write) and its attempt
//     documents (AttemptsUsed).
//   - A campaign completes only once it has had contacts and all of them
//     are final (or its window has closed): a campaign written before its
//     contacts waits for them.
//   - A contact row that could never be called (no known zone, hours that
//     never meet the law's, a prompt its variables cannot fill) is refused
//     at import with its line; variable lengths are counted by the one rule
//     render uses (agent.CheckVariable).
//
// # Why dispatch cannot double-dispatch
//
// Several workers run dispatch at once, and the test database (FerretDB)
// does not make conditional updates atomic (see internal/store), so every
// election here is a unique _id insert:
//
//  1. The round ledger: each campaign's round (Options.Interval, aligned to
//     the Unix epoch) is claimed by inserting "<campaign>-<round number>";
//     one worker wins and the others skip the campaign for that round. A
//     round finishes before the next one starts.
//  2. The attempt id: a contact's nth attempt has the id "<contact>-<n>",
//     derived, not random. Two dispatchers that pick the same contact
//     anyway insert the same id and exactly one succeeds; only the winner
//     enqueues call:outbound, with the attempt id as asynq task id, so a
//     repeated enqueue is refused by Redis too. n is one more than the
//     contact's attempts, which only ApplyOutcome writes, after attempt n-1
//     has ended, so a contact never has two attempts live at once, and
//     dispatch itself never writes the contacts it dials (see
//     internal/store/contacts.go).
//  3. The call's claim (store.ClaimAttempt) lets one worker dial an attempt
//     once, whatever happens to its task.
//
// The concurrency limit rests on the first line: within a round one worker
// dispatches a campaign, counting its live attempts first. Dispatchers also
// walk due contacts in _id order and count an attempt someone else wrote
// against their headroom like their own, which keeps overshoot small should
// two rounds ever overlap (a round that runs up to its deadline while
// another worker's clock runs ahead).
//
// # Repair
//
// A round also repairs what a crash leaves behind: an attempt that stays
// queued (its task may be lost) is enqueued again after RequeueAfter and
// cancelled undialed after ExpireQueuedAfter; an attempt that ended more
// than SettleAfter ago without its outcome reaching the contact gets it
// applied when the round finds the contact due. Attempts cancelled before
// dialing do not use up a contact's attempts.
//
// # Backend mistakes and progress
//
// A contact the backend wrote with a field of the wrong type never stops a
// round: the round dispatches the others and logs the count once
// (campaign.contacts_mistyped); Check lists each contact with its field
// and effect. The round's owner also counts its campaign into the
// campaign_stats snapshot at most every Options.StatsEvery, and when the
// campaign completes, so Stats answers with one read whatever the
// campaign's size.
package campaign
