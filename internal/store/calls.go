package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/docshield/voice-worker/internal/phone"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Calls is the attempt lifecycle as the call flow uses it. *Store implements
// it; tests wrap it to inject faults.
type Calls interface {
	CreateAttempt(ctx context.Context, c *Call) error
	GetCall(ctx context.Context, attemptID string) (*Call, error)
	ClaimAttempt(ctx context.Context, attemptID, owner string, lease time.Duration) (Claim, error)
	Transition(ctx context.Context, c Claim, to CallStatus, f CallFields) error
	AppendTurns(ctx context.Context, c Claim, ts ...Turn) error
	AppendToolCall(ctx context.Context, c Claim, tc ToolCall) error
	ExtendLease(ctx context.Context, c Claim, lease time.Duration) error
}

var _ Calls = (*Store)(nil)

// Claim proves ownership of one attempt. Every later write carries its Fence
// and is refused once the attempt was reaped or has ended.
type Claim struct {
	AttemptID      string
	Owner          string
	Fence          string
	LeaseExpiresAt time.Time
	// Lease is the lease the claim was made with, which its owner renews
	// (ExtendLease) while the call is live.
	Lease time.Duration
}

// claimRecord is the call_claims ledger document whose insert elects the
// attempt's only owner (see the package doc). LeaseExpiresAt is the lease
// granted at claim time; it only matters while the attempt is still queued.
type claimRecord struct {
	ID             string    `bson:"_id"`
	Owner          string    `bson:"owner"`
	Fence          string    `bson:"fence"`
	ClaimedAt      time.Time `bson:"claimed_at"`
	LeaseExpiresAt time.Time `bson:"lease_expires_at"`
}

// CallFields are optional fields a transition records together with the new
// status. Zero fields are left as they are.
type CallFields struct {
	Room        string     `bson:"room,omitempty"`
	SIPCallID   string     `bson:"sip_call_id,omitempty"`
	Outcome     string     `bson:"outcome,omitempty"`
	Error       string     `bson:"error,omitempty"`
	Recording   *Recording `bson:"recording,omitempty"`
	ToolCalls   []ToolCall `bson:"tool_calls,omitempty"`
	LatenciesMS []int      `bson:"latencies_ms,omitempty"`
	Usage       *Usage     `bson:"usage,omitempty"`
}

// Analysis is what call:analyze adds to an ended attempt.
type Analysis struct {
	Outcome   string         `bson:"outcome,omitempty"`
	Summary   string         `bson:"summary,omitempty"`
	Extracted map[string]any `bson:"extracted,omitempty"`
}

// CreateAttempt inserts a queued attempt, filling Status, CreatedAt and
// QueuedAt when empty. Inserting an id that exists returns ErrDuplicate, so
// a dispatcher that runs twice can treat it as done.
func (s *Store) CreateAttempt(ctx context.Context, c *Call) error {
	if c == nil {
		return errors.New("store: create attempt: Call is nil")
	}
	if c.ID == "" {
		return errors.New("store: create attempt: Call.ID is empty")
	}
	if c.Status == "" {
		c.Status = CallQueued
	}
	if c.Status != CallQueued {
		return fmt.Errorf("store: create attempt %q: Call.Status is %q, want %q", c.ID, c.Status, CallQueued)
	}
	if c.Owner != "" || c.Fence != "" || c.Claims != 0 {
		return fmt.Errorf("store: create attempt %q: a new attempt cannot carry Owner, Fence or Claims", c.ID)
	}
	if c.ContactID.IsZero() && c.Phone == "" {
		return fmt.Errorf("store: create attempt %q: Call.ContactID or Call.Phone is required", c.ID)
	}
	if c.Phone != "" && !phone.Valid(c.Phone) {
		return fmt.Errorf("store: create attempt %q: Call.Phone is not E.164", c.ID)
	}
	now := s.clock()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	if c.QueuedAt.IsZero() {
		c.QueuedAt = now
	}
	if _, err := s.calls.InsertOne(ctx, c); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("store: create attempt %q: %w", c.ID, ErrDuplicate)
		}
		return fmt.Errorf("store: create attempt %q: %w", c.ID, err)
	}
	return nil
}

// GetCall reads one attempt.
func (s *Store) GetCall(ctx context.Context, attemptID string) (*Call, error) {
	var c Call
	err := s.calls.FindOne(ctx, bson.D{{Key: "_id", Value: attemptID}}).Decode(&c)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("store: get attempt %q: %w", attemptID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get attempt %q: %w", attemptID, err)
	}
	return &c, nil
}

// ClaimAttempt makes owner the only worker allowed to dial the attempt.
// Of any number of concurrent claimers, across processes, exactly one gets a
// Claim; the others get ErrClaimLost (possibly as ErrClaimPending) or, if the
// attempt does not exist, ErrNotFound. An attempt is claimed at most once
// ever, by one owner: the same owner trying again inside the lease resumes
// its claim (its first try may have failed between the ledger and the
// attempt), and a claim that lapsed before starting the attempt is settled
// as cancelled (never dialed), never handed to another owner.
func (s *Store) ClaimAttempt(ctx context.Context, attemptID, owner string, lease time.Duration) (Claim, error) {
	switch {
	case attemptID == "":
		return Claim{}, errors.New("store: claim attempt: attemptID is empty")
	case owner == "":
		return Claim{}, fmt.Errorf("store: claim attempt %q: owner is empty", attemptID)
	case lease <= 0:
		return Claim{}, fmt.Errorf("store: claim attempt %q: lease %v is not positive", attemptID, lease)
	}
	// A read first answers the common duplicate-delivery case without
	// writing, and keeps ledger entries from being made for unknown ids.
	status, err := s.callStatus(ctx, attemptID)
	if err != nil {
		return Claim{}, fmt.Errorf("store: claim attempt %q: %w", attemptID, err)
	}
	if status != CallQueued {
		return Claim{}, fmt.Errorf("store: claim attempt %q: %w: attempt is %s", attemptID, ErrClaimLost, status)
	}

	fence, err := newFence()
	if err != nil {
		return Claim{}, fmt.Errorf("store: claim attempt %q: %w", attemptID, err)
	}
	now := s.clock()
	c := Claim{AttemptID: attemptID, Owner: owner, Fence: fence, LeaseExpiresAt: now.Add(lease), Lease: lease}
	_, err = s.claims.InsertOne(ctx, claimRecord{
		ID: attemptID, Owner: owner, Fence: fence, ClaimedAt: now, LeaseExpiresAt: c.LeaseExpiresAt,
	})
	if mongo.IsDuplicateKeyError(err) {
		return s.lostClaim(ctx, attemptID, owner, lease)
	}
	if err != nil {
		return Claim{}, fmt.Errorf("store: claim attempt %q: write claim: %w", attemptID, err)
	}

	// The ledger made us the only claimer; now move the attempt.
	return s.startClaimed(ctx, c, now)
}

// startClaimed moves a claimed attempt from queued to dialing under c. If
// this fails, the attempt stays queued under our claim: a retry by the same
// owner inside the lease resumes it (lostClaim), and otherwise it is
// settled as cancelled after the lease; it is never dialed meanwhile. No
// per-attempt lock on the first try: nobody else in this process writes a
// queued attempt before its lease lapses, and a lock would hide a broken
// ledger from the race tests.
func (s *Store) startClaimed(ctx context.Context, c Claim, now time.Time) (Claim, error) {
	attemptID := c.AttemptID
	res, err := s.calls.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: attemptID}, {Key: "status", Value: CallQueued}},
		bson.D{
			{Key: "$set", Value: bson.D{
				{Key: "status", Value: CallDialing},
				{Key: "owner", Value: c.Owner},
				{Key: "fence", Value: c.Fence},
				{Key: "dialing_at", Value: now},
				{Key: "lease_expires_at", Value: c.LeaseExpiresAt},
			}},
			{Key: "$inc", Value: bson.D{{Key: "claims", Value: 1}}},
		})
	if err != nil {
		return Claim{}, fmt.Errorf("store: claim attempt %q: start attempt: %w", attemptID, err)
	}
	if res.MatchedCount == 0 {
		// Cancelled (or reaped) between our read and our write.
		return Claim{}, fmt.Errorf("store: claim attempt %q: %w: attempt left queued before the claim took effect", attemptID, ErrClaimLost)
	}
	return c, nil
}

// lostClaim explains a lost ledger race. When the winning claim is the
// caller's own and inside its lease (its earlier try won the ledger but
// failed to start the attempt: a database timeout), it resumes that claim
// with a fresh lease.
// When the winning claim lapsed without ever starting the attempt, it
// settles the attempt as cancelled (never dialed) and says so with
// ErrClaimSettled.
func (s *Store) lostClaim(ctx context.Context, attemptID, owner string, lease time.Duration) (Claim, error) {
	status, err := s.callStatus(ctx, attemptID)
	if err != nil {
		return Claim{}, fmt.Errorf("store: claim attempt %q: %w", attemptID, err)
	}
	if status != CallQueued {
		return Claim{}, fmt.Errorf("store: claim attempt %q: %w: attempt is %s", attemptID, ErrClaimLost, status)
	}
	var winner claimRecord
	if err := s.claims.FindOne(ctx, bson.D{{Key: "_id", Value: attemptID}}).Decode(&winner); err != nil {
		return Claim{}, fmt.Errorf("store: claim attempt %q: read winning claim: %w", attemptID, err)
	}
	now := s.clock()
	if now.Before(winner.LeaseExpiresAt) {
		if winner.Owner != owner {
			return Claim{}, fmt.Errorf("store: claim attempt %q: %w", attemptID, ErrClaimPending)
		}
		// Ours, and inside its lease, so no reaper writes the attempt
		// (FerretDB's updates are not atomic: see doc.go). The lock keeps
		// this process's duplicate deliveries from both starting it.
		unlock, err := s.lockAttempt(ctx, attemptID)
		if err != nil {
			return Claim{}, err
		}
		defer unlock()
		return s.startClaimed(ctx, Claim{AttemptID: attemptID, Owner: owner, Fence: winner.Fence,
			LeaseExpiresAt: now.Add(lease), Lease: lease}, now)
	}
	settled, err := s.cancelOrphan(ctx, attemptID, winner.Owner, now)
	if err != nil {
		return Claim{}, err
	}
	if !settled {
		return Claim{}, fmt.Errorf("store: claim attempt %q: %w: the winning claim by %q started late", attemptID, ErrClaimLost, winner.Owner)
	}
	return Claim{}, fmt.Errorf("store: claim attempt %q: %w: the winning claim by %q lapsed before it started",
		attemptID, ErrClaimSettled, winner.Owner)
}

// cancelOrphan ends a queued attempt whose claim lapsed before it started.
// It is cancelled, not interrupted: moving out of queued is the gate every
// dial passes, so it was never dialed, and like any attempt cancelled
// before dialing it does not count against the contact's attempts.
func (s *Store) cancelOrphan(ctx context.Context, attemptID, owner string, now time.Time) (bool, error) {
	return s.settle(ctx, attemptID, CallCancelled,
		bson.D{{Key: "_id", Value: attemptID}, {Key: "status", Value: CallQueued}},
		now, fmt.Sprintf("claimed by %q but never started (so never dialed); the claim's lease lapsed", owner))
}

func (s *Store) callStatus(ctx context.Context, attemptID string) (CallStatus, error) {
	var cur struct {
		Status CallStatus `bson:"status"`
	}
	err := s.calls.FindOne(ctx, bson.D{{Key: "_id", Value: attemptID}},
		options.FindOne().SetProjection(bson.D{{Key: "status", Value: 1}})).Decode(&cur)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("read status: %w", err)
	}
	return cur.Status, nil
}

// newFence returns 128 random bits as hex.
func newFence() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("fence token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// transitionRule says which statuses may precede to, and which timestamp
// field records it. dialing is entered only by ClaimAttempt.
func transitionRule(to CallStatus) (from []CallStatus, stampField string, ok bool) {
	switch {
	case to == CallRinging:
		return []CallStatus{CallDialing}, "ringing_at", true
	case to == CallInProgress:
		return []CallStatus{CallDialing, CallRinging}, "answered_at", true
	case to.Terminal():
		return activeCallStatuses, "ended_at", true
	}
	return nil, "", false
}

// Transition moves the claimed attempt forward to status to, stamping the
// step's time and recording f. A stale fence or an ended attempt returns
// ErrFenceMismatch; a status that does not follow the current one returns
// ErrInvalidTransition. Either way nothing is written.
func (s *Store) Transition(ctx context.Context, c Claim, to CallStatus, f CallFields) error {
	op := "transition to " + string(to)
	from, stamp, ok := transitionRule(to)
	if !ok {
		return fmt.Errorf("store: %s attempt %q: %w: not a status a claim can move to", op, c.AttemptID, ErrInvalidTransition)
	}
	extra, err := toDoc(f)
	if err != nil {
		return fmt.Errorf("store: %s attempt %q: encode CallFields: %w", op, c.AttemptID, err)
	}
	set := append(bson.D{{Key: "status", Value: to}, {Key: stamp, Value: s.clock()}}, extra...)
	return s.fencedUpdate(ctx, c, op, from, bson.D{{Key: "$set", Value: set}})
}

// AppendTurns adds transcript turns, in order, while the attempt is live,
// so a killed call keeps what was said up to then. Appending the same
// turns again adds nothing ($addToSet: turns carry their offsets, so two
// real turns are never equal), which makes a write retried after a
// timeout, which may have landed anyway, safe.
func (s *Store) AppendTurns(ctx context.Context, c Claim, ts ...Turn) error {
	for i, t := range ts {
		if t.Role == "" {
			return fmt.Errorf("store: append turns to attempt %q: turn %d: Turn.Role is empty", c.AttemptID, i)
		}
	}
	if len(ts) == 0 {
		return nil
	}
	return s.fencedUpdate(ctx, c, "append turns", activeCallStatuses,
		bson.D{{Key: "$addToSet", Value: bson.D{{Key: "transcript", Value: bson.D{{Key: "$each", Value: ts}}}}}})
}

// AppendToolCall adds one tool call while the attempt is live; like
// AppendTurns, the same call again adds nothing.
func (s *Store) AppendToolCall(ctx context.Context, c Claim, tc ToolCall) error {
	if tc.Name == "" {
		return fmt.Errorf("store: append tool call to attempt %q: ToolCall.Name is empty", c.AttemptID)
	}
	return s.fencedUpdate(ctx, c, "append tool call", activeCallStatuses,
		bson.D{{Key: "$addToSet", Value: bson.D{{Key: "tool_calls", Value: tc}}}})
}

// ExtendLease pushes the attempt's lease to now+lease. An owner that stops
// extending is reaped as interrupted once the lease passes.
func (s *Store) ExtendLease(ctx context.Context, c Claim, lease time.Duration) error {
	if lease <= 0 {
		return fmt.Errorf("store: extend lease of attempt %q: lease %v is not positive", c.AttemptID, lease)
	}
	return s.fencedUpdate(ctx, c, "extend lease", activeCallStatuses,
		bson.D{{Key: "$set", Value: bson.D{{Key: "lease_expires_at", Value: s.clock().Add(lease)}}}})
}

// fencedUpdate applies update only if c still owns the attempt and the
// attempt's status is one of from.
func (s *Store) fencedUpdate(ctx context.Context, c Claim, op string, from []CallStatus, update bson.D) error {
	if c.AttemptID == "" || c.Fence == "" {
		return fmt.Errorf("store: %s: Claim.AttemptID or Claim.Fence is empty", op)
	}
	unlock, err := s.lockAttempt(ctx, c.AttemptID)
	if err != nil {
		return err
	}
	defer unlock()
	res, err := s.calls.UpdateOne(ctx, bson.D{
		{Key: "_id", Value: c.AttemptID},
		{Key: "fence", Value: c.Fence},
		{Key: "status", Value: bson.D{{Key: "$in", Value: from}}},
	}, update)
	if err != nil {
		return fmt.Errorf("store: %s attempt %q: %w", op, c.AttemptID, err)
	}
	if res.MatchedCount > 0 {
		return nil
	}
	return s.explainMiss(ctx, c, op)
}

// explainMiss reads the attempt to say why a fenced update matched nothing.
// The read is for the message only: the refusal itself came from the filter.
func (s *Store) explainMiss(ctx context.Context, c Claim, op string) error {
	var cur struct {
		Status CallStatus `bson:"status"`
		Fence  string     `bson:"fence"`
	}
	err := s.calls.FindOne(ctx, bson.D{{Key: "_id", Value: c.AttemptID}},
		options.FindOne().SetProjection(bson.D{{Key: "status", Value: 1}, {Key: "fence", Value: 1}})).Decode(&cur)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return fmt.Errorf("store: %s attempt %q: %w", op, c.AttemptID, ErrNotFound)
	case err != nil:
		return fmt.Errorf("store: %s attempt %q: refused, then reading it failed: %w", op, c.AttemptID, err)
	case cur.Fence != c.Fence:
		return fmt.Errorf("store: %s attempt %q: %w: held by another claim (status %s)", op, c.AttemptID, ErrFenceMismatch, cur.Status)
	case cur.Status.Terminal():
		return fmt.Errorf("store: %s attempt %q: %w: attempt already %s", op, c.AttemptID, ErrFenceMismatch, cur.Status)
	default:
		return fmt.Errorf("store: %s attempt %q: %w: attempt is %s", op, c.AttemptID, ErrInvalidTransition, cur.Status)
	}
}

// SaveAnalysis records the post-call analysis of an ended attempt. Running
// it again overwrites the same fields, so a retried analysis task is safe.
func (s *Store) SaveAnalysis(ctx context.Context, attemptID string, a Analysis) error {
	set, err := toDoc(a)
	if err != nil {
		return fmt.Errorf("store: save analysis of attempt %q: encode Analysis: %w", attemptID, err)
	}
	if len(set) == 0 {
		return fmt.Errorf("store: save analysis of attempt %q: Analysis is empty", attemptID)
	}
	unlock, err := s.lockAttempt(ctx, attemptID)
	if err != nil {
		return err
	}
	defer unlock()
	res, err := s.calls.UpdateOne(ctx, bson.D{
		{Key: "_id", Value: attemptID},
		{Key: "status", Value: bson.D{{Key: "$in", Value: TerminalCallStatuses}}},
	}, bson.D{{Key: "$set", Value: set}})
	if err != nil {
		return fmt.Errorf("store: save analysis of attempt %q: %w", attemptID, err)
	}
	if res.MatchedCount > 0 {
		return nil
	}
	status, err := s.callStatus(ctx, attemptID)
	if err != nil {
		return fmt.Errorf("store: save analysis of attempt %q: %w", attemptID, err)
	}
	return fmt.Errorf("store: save analysis of attempt %q: %w: attempt is still %s", attemptID, ErrInvalidTransition, status)
}

// orphanLookback bounds the ledger scan for claims that lapsed before their
// attempt started. ReapExpired runs far more often than this, so every
// lapsed claim is seen while it is recent.
const orphanLookback = time.Hour

// Reaped is one attempt ReapExpired settled.
type Reaped struct {
	AttemptID string
	// Status is what it ended as: interrupted, the end its owner had
	// recorded (RecordEnd) before the call document lost it, or cancelled
	// (claimed, never started, so never dialed).
	Status CallStatus
	// Recorded: the owner's recorded end was written, not interrupted.
	Recorded bool
	// Room is the call's LiveKit room, if it got one: an interrupted call
	// may still have a phone line open there.
	Room string
}

// ReapExpired settles up to limit attempts whose owner stopped renewing its
// lease before now, never to be redialed: as interrupted, unless the owner
// recorded the call's end (RecordEnd), which is then written instead. It
// also settles up to limit queued attempts whose claim lapsed before they
// started, as cancelled: they were never dialed. Each settlement is a conditional single-document update, so an
// owner that renews in time, or a second reaper, is never overridden.
func (s *Store) ReapExpired(ctx context.Context, now time.Time, limit int) ([]Reaped, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("store: reap: limit %d is not positive", limit)
	}
	now = now.UTC().Truncate(time.Millisecond)
	reaped, err := s.reapLapsedLeases(ctx, now, limit)
	if err != nil {
		return reaped, err
	}
	orphans, err := s.reapUnstartedClaims(ctx, now, limit)
	for _, id := range orphans {
		reaped = append(reaped, Reaped{AttemptID: id, Status: CallCancelled})
	}
	return reaped, err
}

func (s *Store) reapLapsedLeases(ctx context.Context, now time.Time, limit int) ([]Reaped, error) {
	type lapsed struct {
		ID     string     `bson:"_id"`
		Status CallStatus `bson:"status"`
		Owner  string     `bson:"owner"`
		Fence  string     `bson:"fence"`
		Room   string     `bson:"room"`
		// LeaseExpiresAt orders the statuses' results together.
		LeaseExpiresAt time.Time `bson:"lease_expires_at"`
	}
	var found []lapsed
	if err := findByStatus(ctx, s, s.calls, activeCallStatuses, bson.D{
		{Key: "lease_expires_at", Value: bson.D{{Key: "$lt", Value: now}}},
	}, options.Find().
		SetProjection(bson.D{{Key: "status", Value: 1}, {Key: "owner", Value: 1}, {Key: "fence", Value: 1}, {Key: "room", Value: 1},
			{Key: "lease_expires_at", Value: 1}}).
		SetSort(bson.D{{Key: "lease_expires_at", Value: 1}}).
		SetLimit(int64(limit)), &found); err != nil {
		return nil, fmt.Errorf("store: reap: find lapsed leases: %w", err)
	}
	// The longest lapsed first, across the statuses.
	slices.SortStableFunc(found, func(a, b lapsed) int { return a.LeaseExpiresAt.Compare(b.LeaseExpiresAt) })
	found = found[:min(len(found), limit)]
	var reaped []Reaped
	for _, l := range found {
		end, fence, err := s.RecordedEnd(ctx, l.ID)
		if err != nil {
			return reaped, err
		}
		if end != nil && fence == l.Fence {
			// The owner ended the call and recorded it; a late write undid
			// the call document's copy (see ends.go).
			err := s.applyEnd(ctx, Claim{AttemptID: l.ID, Fence: fence}, *end)
			switch {
			case err == nil:
				reaped = append(reaped, Reaped{AttemptID: l.ID, Status: end.Status, Recorded: true, Room: l.Room})
			case errors.Is(err, ErrFenceMismatch) || errors.Is(err, ErrInvalidTransition):
			default:
				return reaped, err
			}
			continue
		}
		ok, err := s.settle(ctx, l.ID, CallInterrupted, bson.D{
			{Key: "_id", Value: l.ID},
			{Key: "status", Value: l.Status},
			{Key: "fence", Value: l.Fence},
			{Key: "lease_expires_at", Value: bson.D{{Key: "$lt", Value: now}}},
		}, now, fmt.Sprintf("lease lapsed while %s: owner %q stopped renewing it", l.Status, l.Owner))
		if err != nil {
			return reaped, err
		}
		if ok {
			reaped = append(reaped, Reaped{AttemptID: l.ID, Status: CallInterrupted, Room: l.Room})
		}
	}
	return reaped, nil
}

func (s *Store) reapUnstartedClaims(ctx context.Context, now time.Time, limit int) ([]string, error) {
	var lapsed []claimRecord
	if err := s.findAll(ctx, s.claims, bson.D{
		{Key: "lease_expires_at", Value: bson.D{{Key: "$lt", Value: now}, {Key: "$gte", Value: now.Add(-orphanLookback)}}},
	}, options.Find().
		SetSort(bson.D{{Key: "lease_expires_at", Value: -1}}).
		SetLimit(int64(limit)), &lapsed); err != nil {
		return nil, fmt.Errorf("store: reap: find lapsed claims: %w", err)
	}
	if len(lapsed) == 0 {
		return nil, nil
	}
	owners := make(map[string]string, len(lapsed))
	ids := make([]string, 0, len(lapsed))
	for _, c := range lapsed {
		owners[c.ID] = c.Owner
		ids = append(ids, c.ID)
	}
	var queued []struct {
		ID string `bson:"_id"`
	}
	if err := s.findAll(ctx, s.calls, bson.D{
		{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}},
		{Key: "status", Value: CallQueued},
	}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}), &queued); err != nil {
		return nil, fmt.Errorf("store: reap: find unstarted claimed attempts: %w", err)
	}
	var reaped []string
	for _, q := range queued {
		ok, err := s.cancelOrphan(ctx, q.ID, owners[q.ID], now)
		if err != nil {
			return reaped, err
		}
		if ok {
			reaped = append(reaped, q.ID)
		}
	}
	return reaped, nil
}

// settle ends the attempt as status (interrupted or cancelled) if filter
// still matches it.
func (s *Store) settle(ctx context.Context, attemptID string, status CallStatus, filter bson.D, now time.Time, reason string) (bool, error) {
	unlock, err := s.lockAttempt(ctx, attemptID)
	if err != nil {
		return false, err
	}
	defer unlock()
	res, err := s.calls.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{
		{Key: "status", Value: status},
		{Key: "ended_at", Value: now},
		{Key: "error", Value: reason},
	}}})
	if err != nil {
		return false, fmt.Errorf("store: settle attempt %q as %s: %w", attemptID, status, err)
	}
	return res.MatchedCount > 0, nil
}

func (s *Store) findAll(ctx context.Context, coll *mongo.Collection, filter bson.D, opts *options.FindOptionsBuilder, out any) error {
	cur, err := coll.Find(ctx, filter, opts)
	if err != nil {
		return err
	}
	return cur.All(ctx, out)
}

// findByStatus finds the documents of coll that match filter and have one
// of statuses, one find per status by equality, and appends them to out in
// the order of statuses (opts, a sort and limit among them, apply to each
// find). It stands for a "status $in" that a periodic duty asks of the
// whole collection. On MongoDB each find is the same index range the $in
// would take. The local FerretDB hands only equalities to its database and
// filters anything else itself, after decoding every document of the
// collection: four processes' reapers asking $in every 10 s decoded every
// call ever made, transcripts and all, and that bounded the fleet test.
func findByStatus[T any](ctx context.Context, s *Store, coll *mongo.Collection, statuses []CallStatus, filter bson.D,
	opts *options.FindOptionsBuilder, out *[]T) error {
	for _, st := range statuses {
		var part []T
		if err := s.findAll(ctx, coll, append(bson.D{{Key: "status", Value: st}}, filter...), opts, &part); err != nil {
			return err
		}
		*out = append(*out, part...)
	}
	return nil
}

// toDoc encodes v (a struct of omitempty fields) as the fields to $set.
func toDoc(v any) (bson.D, error) {
	raw, err := bson.Marshal(v)
	if err != nil {
		return nil, err
	}
	var d bson.D
	if err := bson.Unmarshal(raw, &d); err != nil {
		return nil, err
	}
	return d, nil
}
