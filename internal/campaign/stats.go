package campaign

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"

	"github.com/docshield/voice-worker/internal/store"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// Stats is a campaign's progress as `worker campaign stats` prints it.
type Stats struct {
	CampaignID string               `json:"campaign_id"`
	Name       string               `json:"name"`
	Status     store.CampaignStatus `json:"status"`
	store.CampaignStats
	// AnswerRate is answered calls over dialed calls, 0 when none was
	// dialed.
	AnswerRate float64 `json:"answer_rate"`
}

// Stats counts a campaign's contacts and calls.
func (s *Service) Stats(ctx context.Context, id bson.ObjectID) (Stats, error) {
	c, err := s.store.GetCampaign(ctx, id)
	if err != nil {
		return Stats{}, err
	}
	cs, err := s.store.CampaignStats(ctx, id)
	if err != nil {
		return Stats{}, err
	}
	st := Stats{CampaignID: id.Hex(), Name: c.Name, Status: c.Status, CampaignStats: cs}
	if cs.Dialed > 0 {
		st.AnswerRate = float64(cs.Answered) / float64(cs.Dialed)
	}
	return st, nil
}

// WriteText prints the stats for a person.
func (st Stats) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "campaign\t%s (%s)\n", st.CampaignID, st.Name)
	fmt.Fprintf(tw, "status\t%s\n", st.Status)
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
