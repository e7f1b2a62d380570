package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// CollCampaignStats holds one counted snapshot per campaign (_id = the
// campaign's id): what `worker campaign stats` prints and the counters a
// backend's dashboard shows.
//
// Why a snapshot and not counters incremented as calls end: a count is
// exact at the instant it was taken, whoever writes it and however often,
// so nothing can be lost or counted twice. Increments on one document are
// atomic on Atlas but not on FerretDB (see the package doc), and an
// increment that must happen exactly once per attempt, next to the write
// that ends it, needs a second document and a repair for the crash between
// the two. A count needs neither; it costs one pass over the campaign's
// contacts and one over its calls, which is why it is stored and not
// taken on every `stats`.
const CollCampaignStats = "campaign_stats"

// CampaignStats are a campaign's counts as `worker campaign stats` shows
// them.
type CampaignStats struct {
	Contacts         int            `bson:"contacts" json:"contacts"`
	ContactsByStatus map[string]int `bson:"contacts_by_status" json:"contacts_by_status"`
	// Attempts counts call documents; Dialed those that reached dialing,
	// Answered those that were answered.
	Attempts       int            `bson:"attempts" json:"attempts"`
	Dialed         int            `bson:"dialed" json:"dialed"`
	Answered       int            `bson:"answered" json:"answered"`
	CallsByStatus  map[string]int `bson:"calls_by_status" json:"calls_by_status"`
	CallsByOutcome map[string]int `bson:"calls_by_outcome" json:"calls_by_outcome"`
}

// CampaignCounters are running totals for dashboards: attempts that went
// to the phone network, and those whose outcome was completed, failed or
// opted_out (the call's outcome, or its status when it recorded none).
type CampaignCounters struct {
	Attempts  int `bson:"attempts" json:"attempts"`
	Completed int `bson:"completed" json:"completed"`
	Failed    int `bson:"failed" json:"failed"`
	OptOuts   int `bson:"opt_outs" json:"opt_outs"`
}

// StatsSnapshot is one count of a campaign, as stored in campaign_stats.
type StatsSnapshot struct {
	CampaignID bson.ObjectID `bson:"_id" json:"-"`
	// CountedAt is when the count started; TookMS how long it took.
	CountedAt     time.Time `bson:"counted_at" json:"counted_at"`
	TookMS        int64     `bson:"took_ms" json:"took_ms"`
	CampaignStats `bson:",inline"`
	Counters      CampaignCounters `bson:"counters" json:"counters"`
}

// CampaignStats counts a campaign's contacts by status and its attempts by
// status and outcome: one aggregation over each collection, each matching
// only the campaign's documents through an index on Atlas.
func (s *Store) CampaignStats(ctx context.Context, campaignID bson.ObjectID) (CampaignStats, error) {
	st, _, err := s.countCampaign(ctx, campaignID)
	return st, err
}

// callGroup is one group of a campaign's calls by status, outcome and
// whether it was dialed and answered ($type is "missing" when not).
type callGroup struct {
	Key struct {
		Status   any    `bson:"s"`
		Outcome  any    `bson:"o"`
		Dialed   string `bson:"d"`
		Answered string `bson:"a"`
	} `bson:"_id"`
	N int `bson:"n"`
}

func (s *Store) countCampaign(ctx context.Context, campaignID bson.ObjectID) (CampaignStats, CampaignCounters, error) {
	var st CampaignStats
	var ct CampaignCounters
	match := bson.D{{Key: "campaign_id", Value: campaignID}}
	var err error
	if st.ContactsByStatus, err = s.countBy(ctx, s.contacts, match, "status"); err != nil {
		return st, ct, err
	}
	for _, n := range st.ContactsByStatus {
		st.Contacts += n
	}
	cur, err := s.calls.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: match}},
		{{Key: "$group", Value: bson.D{
			{Key: "_id", Value: bson.D{
				{Key: "s", Value: "$status"},
				{Key: "o", Value: "$outcome"},
				{Key: "d", Value: bson.D{{Key: "$type", Value: "$dialing_at"}}},
				{Key: "a", Value: bson.D{{Key: "$type", Value: "$answered_at"}}},
			}},
			{Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}},
		}}},
	})
	if err != nil {
		return st, ct, fmt.Errorf("store: campaign %s stats: count calls: %w", campaignID.Hex(), err)
	}
	var groups []callGroup
	if err := cur.All(ctx, &groups); err != nil {
		return st, ct, fmt.Errorf("store: campaign %s stats: count calls: %w", campaignID.Hex(), err)
	}
	st.CallsByStatus, st.CallsByOutcome = map[string]int{}, map[string]int{}
	for _, g := range groups {
		status, _ := g.Key.Status.(string)
		outcome, _ := g.Key.Outcome.(string)
		st.Attempts += g.N
		st.CallsByStatus[status] += g.N
		if outcome != "" {
			st.CallsByOutcome[outcome] += g.N
		}
		dialed := g.Key.Dialed == "date"
		if dialed {
			st.Dialed += g.N
			ct.Attempts += g.N
		}
		if g.Key.Answered == "date" {
			st.Answered += g.N
		}
		if outcome == "" && CallStatus(status).Terminal() {
			outcome = status
		}
		switch outcome {
		case "completed":
			ct.Completed += g.N
		case "failed":
			ct.Failed += g.N
		case "opted_out":
			ct.OptOuts += g.N
		}
	}
	return st, ct, nil
}

// CountCampaign counts a campaign now and stores the snapshot, unless a
// snapshot counted later is there already (then that one stays, and this
// one is still returned).
func (s *Store) CountCampaign(ctx context.Context, campaignID bson.ObjectID) (StatsSnapshot, error) {
	start := s.now()
	snap := StatsSnapshot{CampaignID: campaignID, CountedAt: start.UTC().Truncate(time.Millisecond)}
	var err error
	if snap.CampaignStats, snap.Counters, err = s.countCampaign(ctx, campaignID); err != nil {
		return snap, err
	}
	snap.TookMS = s.now().Sub(start).Milliseconds()
	_, err = s.db.Collection(CollCampaignStats).ReplaceOne(ctx,
		bson.D{{Key: "_id", Value: campaignID}, {Key: "counted_at", Value: bson.D{{Key: "$lte", Value: snap.CountedAt}}}},
		snap, options.Replace().SetUpsert(true))
	if err != nil && !mongo.IsDuplicateKeyError(err) { // duplicate: a later count is stored
		return snap, fmt.Errorf("store: save stats of campaign %s: %w", campaignID.Hex(), err)
	}
	return snap, nil
}

// GetCampaignStats reads a campaign's stored snapshot; ErrNotFound when it
// was never counted.
func (s *Store) GetCampaignStats(ctx context.Context, campaignID bson.ObjectID) (StatsSnapshot, error) {
	var snap StatsSnapshot
	err := s.db.Collection(CollCampaignStats).FindOne(ctx, bson.D{{Key: "_id", Value: campaignID}}).Decode(&snap)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return snap, fmt.Errorf("store: stats of campaign %s: %w", campaignID.Hex(), ErrNotFound)
	}
	if err != nil {
		return snap, fmt.Errorf("store: stats of campaign %s: %w", campaignID.Hex(), err)
	}
	return snap, nil
}
