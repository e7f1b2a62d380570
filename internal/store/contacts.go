package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/docshield/voice-worker/internal/phone"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Dispatch never writes a contact it dials: the attempt document says a
// call is under way, and the contact is written once the attempt has ended
// (SetContactOutcome). Per-contact writes at dispatch would also make a
// large campaign slow on FerretDB, which writes documents one at a time.

// InsertContacts adds contacts, skipping any whose (campaign_id, phone)
// exists already, and reports how many were inserted and how many skipped.
// The unique index decides, so re-running an import never duplicates.
func (s *Store) InsertContacts(ctx context.Context, cs []Contact) (inserted, duplicates int, err error) {
	if len(cs) == 0 {
		return 0, 0, nil
	}
	docs := make([]any, len(cs))
	for i := range cs {
		if cs[i].CampaignID.IsZero() {
			return 0, 0, fmt.Errorf("store: insert contacts: contact %d: Contact.CampaignID is empty", i)
		}
		if !phone.Valid(cs[i].Phone) {
			return 0, 0, fmt.Errorf("store: insert contacts: contact %d: Contact.Phone is not E.164", i)
		}
		docs[i] = cs[i]
	}
	_, err = s.contacts.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	dups, err := duplicateIndexes(err)
	if err != nil {
		return 0, 0, fmt.Errorf("store: insert contacts: %w", err)
	}
	return len(cs) - len(dups), len(dups), nil
}

// duplicateIndexes splits an unordered insert's error into the positions
// refused as duplicates and any other error.
func duplicateIndexes(err error) (map[int]bool, error) {
	if err == nil {
		return nil, nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return nil, err
	}
	dups := make(map[int]bool, len(bwe.WriteErrors))
	for _, we := range bwe.WriteErrors {
		if !mongo.IsDuplicateKeyError(we) {
			return nil, err
		}
		dups[we.Index] = true
	}
	return dups, nil
}

// GetContact reads one contact.
func (s *Store) GetContact(ctx context.Context, id bson.ObjectID) (*Contact, error) {
	var c Contact
	err := s.contacts.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&c)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("store: get contact %s: %w", id.Hex(), ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get contact %s: %w", id.Hex(), err)
	}
	return &c, nil
}

// PendingTimeZones lists the distinct time zones set on a campaign's
// pending contacts. Contacts without one are not represented. (An
// aggregation, not distinct: FerretDB's distinct refuses the maxTimeMS the
// driver adds when the context has a deadline.)
func (s *Store) PendingTimeZones(ctx context.Context, campaignID bson.ObjectID) ([]string, error) {
	counts, err := s.countBy(ctx, s.contacts, bson.D{
		{Key: "campaign_id", Value: campaignID},
		{Key: "status", Value: ContactPending},
	}, "time_zone")
	if err != nil {
		return nil, fmt.Errorf("store: time zones of campaign %s: %w", campaignID.Hex(), err)
	}
	zones := make([]string, 0, len(counts))
	for z := range counts {
		if z != "" {
			zones = append(zones, z)
		}
	}
	sort.Strings(zones)
	return zones, nil
}

// DueQuery selects pending contacts whose next attempt is due.
type DueQuery struct {
	CampaignID bson.ObjectID
	Now        time.Time
	// Zones are the contacts' time zones to include; IncludeNoZone adds
	// contacts without one (they use the campaign's default zone).
	Zones         []string
	IncludeNoZone bool
	// Exclude leaves these contacts out: those with a live attempt.
	Exclude []bson.ObjectID
	// AfterID pages: only contacts with a larger _id. Zero starts at the
	// beginning.
	AfterID bson.ObjectID
	Limit   int
}

// DueContacts returns up to q.Limit due contacts in _id order, so that
// concurrent dispatchers walk the same contacts in the same order.
func (s *Store) DueContacts(ctx context.Context, q DueQuery) ([]Contact, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("store: due contacts: DueQuery.Limit %d is not positive", q.Limit)
	}
	zones := bson.A{}
	for _, z := range q.Zones {
		zones = append(zones, z)
	}
	if q.IncludeNoZone {
		zones = append(zones, nil, "")
	}
	if len(zones) == 0 {
		return nil, nil
	}
	filter := bson.D{
		{Key: "campaign_id", Value: q.CampaignID},
		{Key: "status", Value: ContactPending},
		{Key: "$or", Value: bson.A{
			bson.D{{Key: "next_attempt_at", Value: nil}},
			bson.D{{Key: "next_attempt_at", Value: bson.D{{Key: "$lte", Value: q.Now.UTC()}}}},
		}},
		{Key: "time_zone", Value: bson.D{{Key: "$in", Value: zones}}},
	}
	var id bson.D
	if !q.AfterID.IsZero() {
		id = append(id, bson.E{Key: "$gt", Value: q.AfterID})
	}
	if len(q.Exclude) > 0 {
		id = append(id, bson.E{Key: "$nin", Value: q.Exclude})
	}
	if len(id) > 0 {
		filter = append(filter, bson.E{Key: "_id", Value: id})
	}
	var out []Contact
	err := s.findAll(ctx, s.contacts, filter,
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(q.Limit)), &out)
	if err != nil {
		return nil, fmt.Errorf("store: due contacts of campaign %s: %w", q.CampaignID.Hex(), err)
	}
	return out, nil
}

// CountContacts counts a campaign's contacts in any of statuses (all of
// them when none is given).
func (s *Store) CountContacts(ctx context.Context, campaignID bson.ObjectID, statuses ...ContactStatus) (int64, error) {
	filter := bson.D{{Key: "campaign_id", Value: campaignID}}
	if len(statuses) > 0 {
		filter = append(filter, bson.E{Key: "status", Value: bson.D{{Key: "$in", Value: statuses}}})
	}
	n, err := s.contacts.CountDocuments(ctx, filter)
	if err != nil {
		return 0, fmt.Errorf("store: count contacts of campaign %s: %w", campaignID.Hex(), err)
	}
	return n, nil
}

// FinishPendingContacts makes pending contacts final without an attempt,
// e.g. do_not_call because their number is on the list. lastOutcome says
// why.
func (s *Store) FinishPendingContacts(ctx context.Context, ids []bson.ObjectID, status ContactStatus, lastOutcome string, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := s.contacts.UpdateMany(ctx,
		bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}, {Key: "status", Value: ContactPending}},
		bson.D{{Key: "$set", Value: bson.D{
			{Key: "status", Value: status},
			{Key: "last_outcome", Value: lastOutcome},
			{Key: "updated_at", Value: now.UTC()},
		}}})
	if err != nil {
		return fmt.Errorf("store: finish %d pending contacts as %s: %w", len(ids), status, err)
	}
	return nil
}

// ExhaustPendingContacts makes a campaign's remaining pending contacts
// final, for a campaign whose calling window has closed for good.
func (s *Store) ExhaustPendingContacts(ctx context.Context, campaignID bson.ObjectID, now time.Time) (int64, error) {
	res, err := s.contacts.UpdateMany(ctx,
		bson.D{{Key: "campaign_id", Value: campaignID}, {Key: "status", Value: ContactPending}},
		bson.D{{Key: "$set", Value: bson.D{
			{Key: "status", Value: ContactExhausted},
			{Key: "updated_at", Value: now.UTC()},
		}}})
	if err != nil {
		return 0, fmt.Errorf("store: exhaust pending contacts of campaign %s: %w", campaignID.Hex(), err)
	}
	return res.ModifiedCount, nil
}

// ContactOutcome is a contact's state after one of its attempts ended.
type ContactOutcome struct {
	Status ContactStatus
	// Attempt is the number of the attempt that ended.
	Attempt   int
	AttemptID string
	// NextAttemptAt is when to call again; zero for a final status.
	NextAttemptAt time.Time
	LastOutcome   string
}

// SetContactOutcome records o on a contact that is still pending or calling
// and has not recorded a later attempt. It reports whether it matched:
// applying the same outcome twice writes the same values, and an outcome
// arriving after the contact moved on changes nothing.
func (s *Store) SetContactOutcome(ctx context.Context, id bson.ObjectID, o ContactOutcome, now time.Time) (bool, error) {
	if o.Status == "" || o.Attempt <= 0 {
		return false, fmt.Errorf("store: set outcome of contact %s: ContactOutcome.Status and Attempt are required", id.Hex())
	}
	set := bson.D{
		{Key: "status", Value: o.Status},
		{Key: "attempts", Value: o.Attempt},
		{Key: "last_outcome", Value: o.LastOutcome},
		{Key: "updated_at", Value: now.UTC()},
	}
	if o.AttemptID != "" {
		set = append(set, bson.E{Key: "last_attempt_id", Value: o.AttemptID})
	}
	update := bson.D{}
	if o.NextAttemptAt.IsZero() {
		update = append(update, bson.E{Key: "$unset", Value: bson.D{{Key: "next_attempt_at", Value: ""}}})
	} else {
		set = append(set, bson.E{Key: "next_attempt_at", Value: o.NextAttemptAt.UTC()})
	}
	update = append(update, bson.E{Key: "$set", Value: set})
	res, err := s.contacts.UpdateOne(ctx, bson.D{
		{Key: "_id", Value: id},
		{Key: "status", Value: bson.D{{Key: "$in", Value: []ContactStatus{ContactPending, ContactCalling}}}},
		{Key: "attempts", Value: bson.D{{Key: "$lte", Value: o.Attempt}}},
	}, update)
	if err != nil {
		return false, fmt.Errorf("store: set outcome of contact %s: %w", id.Hex(), err)
	}
	return res.MatchedCount > 0, nil
}

// ListedPhones returns which of phones are on the do-not-call list, in one
// query. Numbers that are not E.164 are an error, as in IsDoNotCall.
func (s *Store) ListedPhones(ctx context.Context, phones []string) (map[string]bool, error) {
	if len(phones) == 0 {
		return map[string]bool{}, nil
	}
	for i, p := range phones {
		if !phone.Valid(p) {
			return nil, fmt.Errorf("store: check do-not-call: phone %d of %d is not E.164", i+1, len(phones))
		}
	}
	var found []struct {
		Phone string `bson:"phone"`
	}
	err := s.findAll(ctx, s.dnc,
		bson.D{{Key: "phone", Value: bson.D{{Key: "$in", Value: phones}}}},
		options.Find().SetProjection(bson.D{{Key: "phone", Value: 1}}), &found)
	if err != nil {
		return nil, fmt.Errorf("store: check do-not-call: %w", err)
	}
	listed := make(map[string]bool, len(found))
	for _, f := range found {
		listed[f.Phone] = true
	}
	return listed, nil
}

// AttemptMark is one of a contact's attempt documents as the attempt limit
// sees it: its number, and whether it went to the phone network (anything
// but still queued or cancelled before dialing).
type AttemptMark struct {
	Attempt int
	Dialed  bool
}

// ContactAttempts lists a contact's attempt documents, by attempt number.
func (s *Store) ContactAttempts(ctx context.Context, contactID bson.ObjectID) ([]AttemptMark, error) {
	var found []struct {
		Attempt int        `bson:"attempt"`
		Status  CallStatus `bson:"status"`
	}
	err := s.findAll(ctx, s.calls, bson.D{{Key: "contact_id", Value: contactID}},
		options.Find().SetProjection(bson.D{{Key: "attempt", Value: 1}, {Key: "status", Value: 1}}).
			SetSort(bson.D{{Key: "attempt", Value: 1}}), &found)
	if err != nil {
		return nil, fmt.Errorf("store: attempts of contact %s: %w", contactID.Hex(), err)
	}
	marks := make([]AttemptMark, len(found))
	for i, f := range found {
		marks[i] = AttemptMark{Attempt: f.Attempt, Dialed: f.Status != CallQueued && f.Status != CallCancelled}
	}
	return marks, nil
}
