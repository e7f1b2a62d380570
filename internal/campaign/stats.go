package campaign

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/docshield/voice-worker/internal/store"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap"
)

// Stats is a campaign's progress as `worker campaign stats` prints it: the
// campaign_stats snapshot (store.StatsSnapshot), counted at CountedAt.
type Stats struct {
	CampaignID string               `json:"campaign_id"`
	Name       string               `json:"name"`
	Status     store.CampaignStatus `json:"status"`
	store.StatsSnapshot
	// AnswerRate is answered calls over dialed calls, 0 when none was
	// dialed.
	AnswerRate float64 `json:"answer_rate"`
}

// Stats reads a campaign's progress from its snapshot, which rounds of a
// running campaign refresh every Options.StatsEvery, so it answers at once
// whatever the campaign's size. With recount, or when the campaign was
// never counted, it counts now (one pass over the campaign's contacts and
// one over its calls) and stores the count.
func (s *Service) Stats(ctx context.Context, id bson.ObjectID, recount bool) (Stats, error) {
	c, err := s.store.GetCampaign(ctx, id)
	if err != nil {
		return Stats{}, err
	}
	snap, err := s.store.GetCampaignStats(ctx, id)
	if recount || errors.Is(err, store.ErrNotFound) {
		snap, err = s.store.CountCampaign(ctx, id)
	}
	if err != nil {
		return Stats{}, err
	}
	st := Stats{CampaignID: id.Hex(), Name: c.Name, Status: c.Status, StatsSnapshot: snap}
	if snap.Dialed > 0 {
		st.AnswerRate = float64(snap.Answered) / float64(snap.Dialed)
	}
	return st, nil
}

// refreshStats counts the campaign into its snapshot when the snapshot is
// older than StatsEvery, or always when the campaign has just completed
// (its final count). Only the round's owner calls it, so counts are not
// repeated by every worker. A failure is logged: stats are not worth a
// failed round.
func (s *Service) refreshStats(ctx context.Context, id bson.ObjectID, now time.Time, completed bool) {
	if !completed {
		if s.opt.StatsEvery < 0 {
			return
		}
		snap, err := s.store.GetCampaignStats(ctx, id)
		if err == nil && now.Sub(snap.CountedAt) < s.opt.StatsEvery {
			return
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("campaign.stats_failed", zap.String("campaign_id", id.Hex()), zap.Error(err))
			return
		}
	}
	if _, err := s.store.CountCampaign(ctx, id); err != nil {
		s.log.Warn("campaign.stats_failed", zap.String("campaign_id", id.Hex()), zap.Error(err))
	}
}

// WriteText prints the stats for a person.
func (st Stats) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "campaign\t%s (%s)\n", st.CampaignID, st.Name)
	fmt.Fprintf(tw, "status\t%s\n", st.Status)
	fmt.Fprintf(tw, "counted at\t%s (took %s; --recount counts now)\n",
		st.CountedAt.UTC().Format(time.RFC3339), time.Duration(st.TookMS)*time.Millisecond)
	fmt.Fprintf(tw, "contacts\t%d\n", st.Contacts)
	writeCounts(tw, "  ", st.ContactsByStatus)
	fmt.Fprintf(tw, "attempts\t%d\n", st.Attempts)
	writeCounts(tw, "  ", st.CallsByStatus)
	if len(st.CallsByOutcome) > 0 {
		fmt.Fprintf(tw, "call outcomes\t\n")
		writeCounts(tw, "  ", st.CallsByOutcome)
	}
	fmt.Fprintf(tw, "dialed\t%d\n", st.Dialed)
	fmt.Fprintf(tw, "answered\t%d\n", st.Answered)
	if st.Dialed > 0 {
		fmt.Fprintf(tw, "answer rate\t%.1f%%\n", 100*st.AnswerRate)
	} else {
		fmt.Fprintf(tw, "answer rate\t-\n")
	}
	fmt.Fprintf(tw, "counters\tattempts %d, completed %d, failed %d, opt-outs %d\n",
		st.Counters.Attempts, st.Counters.Completed, st.Counters.Failed, st.Counters.OptOuts)
	return tw.Flush()
}

func writeCounts(w io.Writer, indent string, m map[string]int) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		name := k
		if name == "" {
			name = "(none)"
		}
		fmt.Fprintf(w, "%s%s\t%d\n", indent, name, m[k])
	}
}
