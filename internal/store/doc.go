// Package store keeps DocShield's records in MongoDB: campaigns, contacts,
// call attempts and the do-not-call list, plus the fenced state changes that
// make "never dial a contact twice for one attempt" hold across workers.
//
// Production runs on MongoDB Atlas; tests run on FerretDB v1.24 (SQLite).
// Code here uses only what both speak, and only single-document writes.
//
// # Why a claim is an insert, not a conditional update
//
// On Atlas a conditional UpdateOne({_id, status: "queued"}) is atomic, so it
// alone would decide a race between claimers. FerretDB v1.24 is different:
// it runs an update as "query, change in Go, write the whole document back by
// _id" without holding a lock between the read and the write (see its
// internal/handler/common/update.go). Measured here: 50 concurrent
// conditional updates of one queued document reported up to 34 winners, and
// $inc lost increments. An insert, by contrast, is decided by SQLite's unique
// _id index, and 50 concurrent inserts of one _id always gave one winner.
//
// So ClaimAttempt first inserts a ledger document (collection call_claims,
// _id = attempt id): that insert elects the single owner on both servers.
// Only the owner then writes the call document (queued → dialing with its
// fence token). A claim is never deleted, so an attempt can never be claimed
// twice. An owner whose write to the call document fails (a timeout) may
// try again inside its lease and resume its claim. An owner that dies after
// the insert leaves the attempt queued but unclaimable until the lease
// passes; then it is settled as cancelled (by the next ClaimAttempt for it,
// or by ReapExpired): it never left queued, so it was never dialed, and
// its contact is due again.
//
// FerretDB's read-modify-write also means two concurrent writers to one
// document can silently undo each other (a lease extension written after a
// final transition would put the status back). After the claim, only the
// owner and, once its lease has lapsed, the reaper write a call document, and
// Store serializes its own writes per attempt inside the process, so one
// worker's goroutines (transcript writer, lease keeper) cannot clobber each
// other. On Atlas that lock is redundant but cheap.
//
// # What the backend may write, and what happens when it writes it wrong
//
// The campaigns and contacts collections are written by the campaign
// backend, in any language. Their $jsonSchema validators (schemas/mongodb,
// Schema) are applied by Migrate with validationAction "error", so Atlas
// refuses a mistyped write at the backend's call, and validationLevel
// "moderate", so documents that predate the validator can still be
// updated. FerretDB v1.24 implements neither collMod nor create with a
// validator; there Schema.Check evaluates the same documents in Go. Reads
// tolerate what slipped through: DueContacts sets aside a contact that does
// not decode instead of failing its page, and SurveyContacts counts the
// contacts dispatch cannot see (a string campaign_id or next_attempt_at, an
// unknown status).
//
// # Stats are counted, not incremented
//
// campaign_stats holds one count per campaign (CountCampaign), taken by one
// writer and stored whole, rather than counters incremented as calls end:
// on FerretDB concurrent $inc lose increments (see above), and an
// increment kept exactly once per attempt needs a ledger document and a
// repair for a crash between the two writes. A count is exact at its
// counted_at and cannot be lost or doubled.
package store
