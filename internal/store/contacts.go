package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
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

// DuePage is one page of due contacts.
type DuePage struct {
	Contacts []Contact
	// Mistyped are due contacts whose document does not decode: a field
	// the worker reads has the wrong BSON type (a phone stored as a
	// number, attempts as a string). They are never dialed; dispatch
	// counts them in its round's log line.
	Mistyped []bson.ObjectID
	// Last is the largest ObjectId _id of the page, for DueQuery.AfterID;
	// zero when the page has none.
	Last bson.ObjectID
}

// DueContacts returns a page of up to q.Limit due contacts in _id order,
// so that concurrent dispatchers walk the same contacts in the same order.
// A document that does not decode is set aside in the page's Mistyped
// rather than failing the page: one backend mistake must not stop the
// whole campaign.
func (s *Store) DueContacts(ctx context.Context, q DueQuery) (DuePage, error) {
	var page DuePage
	if q.Limit <= 0 {
		return page, fmt.Errorf("store: due contacts: DueQuery.Limit %d is not positive", q.Limit)
	}
	zones := bson.A{}
	for _, z := range q.Zones {
		zones = append(zones, z)
	}
	if q.IncludeNoZone {
		zones = append(zones, nil, "")
	}
	if len(zones) == 0 {
		return page, nil
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
	cur, err := s.contacts.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(q.Limit)))
	if err != nil {
		return page, fmt.Errorf("store: due contacts of campaign %s: %w", q.CampaignID.Hex(), err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		id, ok := cur.Current.Lookup("_id").ObjectIDOK()
		if ok {
			page.Last = id
		}
		var c Contact
		if err := cur.Decode(&c); err != nil {
			page.Mistyped = append(page.Mistyped, id)
			continue
		}
		page.Contacts = append(page.Contacts, c)
	}
	if err := cur.Err(); err != nil {
		return page, fmt.Errorf("store: due contacts of campaign %s: %w", q.CampaignID.Hex(), err)
	}
	return page, nil
}

// Mistyped counts a campaign's contacts that dispatch never sees because
// a field it selects by has the wrong BSON type or value, by what is
// wrong. The field names are the JSON names, for log lines.
type Mistyped struct {
	// CampaignIDString: campaign_id is the campaign's id as a hex string,
	// not an ObjectId, so the contact matches no campaign.
	CampaignIDString int `json:"campaign_id_string,omitempty"`
	// UnknownStatus: status is none of ContactStatuses (or not a string).
	UnknownStatus int `json:"unknown_status,omitempty"`
	// NextAttemptAt: a pending contact's next_attempt_at is neither a date
	// nor null (an ISO string, a number), so it is never due.
	NextAttemptAt int `json:"next_attempt_at,omitempty"`
	// TimeZone: a pending contact's time_zone is not a string.
	TimeZone int `json:"time_zone,omitempty"`
	// Undecodable: a due contact whose document does not decode
	// (DuePage.Mistyped).
	Undecodable int `json:"undecodable,omitempty"`
}

// Total is the number of contacts counted.
func (m Mistyped) Total() int {
	return m.CampaignIDString + m.UnknownStatus + m.NextAttemptAt + m.TimeZone + m.Undecodable
}

// ContactSurvey is what one pass over a campaign's contacts tells a
// dispatch round.
type ContactSurvey struct {
	// Zones are the distinct time zones set on pending contacts; contacts
	// without one are not represented.
	Zones    []string
	Mistyped Mistyped
}

// SurveyContacts lists the time zones of a campaign's pending contacts
// and counts the contacts dispatch cannot see (Mistyped), in one
// aggregation: on Atlas each branch of its $or is bounded by the
// (campaign_id, status, next_attempt_at) index, so the mistyped ones cost
// nothing extra. (An aggregation, not distinct: FerretDB's distinct
// refuses the maxTimeMS the driver adds when the context has a deadline.)
func (s *Store) SurveyContacts(ctx context.Context, campaignID bson.ObjectID) (ContactSurvey, error) {
	var sv ContactSurvey
	cur, err := s.contacts.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "campaign_id", Value: campaignID}, {Key: "status", Value: ContactPending}},
			bson.D{{Key: "campaign_id", Value: campaignID}, {Key: "status", Value: bson.D{{Key: "$nin", Value: ContactStatuses}}}},
			bson.D{{Key: "campaign_id", Value: campaignID.Hex()}},
		}}}}},
		{{Key: "$group", Value: bson.D{
			{Key: "_id", Value: bson.D{
				{Key: "c", Value: bson.D{{Key: "$type", Value: "$campaign_id"}}},
				{Key: "s", Value: "$status"},
				{Key: "z", Value: "$time_zone"},
				{Key: "n", Value: bson.D{{Key: "$type", Value: "$next_attempt_at"}}},
			}},
			{Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}},
		}}},
	})
	if err != nil {
		return sv, fmt.Errorf("store: survey contacts of campaign %s: %w", campaignID.Hex(), err)
	}
	var groups []struct {
		Key struct {
			CampaignIDType string `bson:"c"`
			Status         any    `bson:"s"`
			Zone           any    `bson:"z"`
			NextType       string `bson:"n"`
		} `bson:"_id"`
		N int `bson:"n"`
	}
	if err := cur.All(ctx, &groups); err != nil {
		return sv, fmt.Errorf("store: survey contacts of campaign %s: %w", campaignID.Hex(), err)
	}
	zones := map[string]bool{}
	for _, g := range groups {
		k := g.Key
		status, _ := k.Status.(string)
		switch {
		case k.CampaignIDType != "objectId":
			sv.Mistyped.CampaignIDString += g.N
		case !slices.Contains(ContactStatuses, ContactStatus(status)):
			sv.Mistyped.UnknownStatus += g.N
		case k.NextType != "date" && k.NextType != "null" && k.NextType != "missing":
			sv.Mistyped.NextAttemptAt += g.N
		default:
			switch z := k.Zone.(type) {
			case nil:
			case string:
				if z != "" {
					zones[z] = true
				}
			default:
				sv.Mistyped.TimeZone += g.N
			}
		}
	}
	sv.Zones = slices.Sorted(maps.Keys(zones))
	return sv, nil
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
