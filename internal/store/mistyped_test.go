package store

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// nodeMistakes are contacts as a Node backend writes them by mistake,
// each next to a well-typed one: the three of issue 11 and one that does
// not decode.
func nodeMistakes(campaign bson.ObjectID) []any {
	return []any{
		bson.D{{Key: "campaign_id", Value: campaign}, {Key: "phone", Value: "+14155550100"}, {Key: "status", Value: "pending"},
			{Key: "attempts", Value: int32(0)}},
		bson.D{{Key: "campaign_id", Value: campaign}, {Key: "phone", Value: "+14155550101"}, {Key: "status", Value: "pending"},
			{Key: "attempts", Value: int32(0)}, {Key: "next_attempt_at", Value: "2026-03-10T13:00:00.000Z"}},
		bson.D{{Key: "campaign_id", Value: campaign.Hex()}, {Key: "phone", Value: "+14155550102"}, {Key: "status", Value: "pending"},
			{Key: "attempts", Value: int32(0)}},
		bson.D{{Key: "campaign_id", Value: campaign}, {Key: "phone", Value: "+14155550103"}, {Key: "status", Value: "queued"},
			{Key: "attempts", Value: int32(0)}},
		bson.D{{Key: "campaign_id", Value: campaign}, {Key: "phone", Value: "+14155550104"}, {Key: "status", Value: "pending"},
			{Key: "attempts", Value: "0"}},
		bson.D{{Key: "campaign_id", Value: campaign}, {Key: "phone", Value: "+14155550105"}, {Key: "status", Value: "pending"},
			{Key: "attempts", Value: 2.0}, {Key: "next_attempt_at", Value: bson.NewDateTimeFromTime(t0.Add(-time.Hour))}},
	}
}

func TestDispatchQueriesSeeMistypedContacts(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	campaign := bson.NewObjectID()
	_, err := s.contacts.InsertMany(ctx, nodeMistakes(campaign))
	require.NoError(t, err)

	sv, err := s.SurveyContacts(ctx, campaign)
	require.NoError(t, err)
	require.Equal(t, Mistyped{CampaignIDString: 1, UnknownStatus: 1, NextAttemptAt: 1}, sv.Mistyped)

	page, err := s.DueContacts(ctx, DueQuery{CampaignID: campaign, Now: t0, IncludeNoZone: true, Limit: 10})
	require.NoError(t, err, "one undecodable contact does not fail the page")
	var got []string
	for _, c := range page.Contacts {
		got = append(got, c.Phone)
	}
	require.Equal(t, []string{"+14155550100", "+14155550105"}, got, "whole doubles decode as integers")
	require.Len(t, page.Mistyped, 1, "attempts as a string")
	require.Equal(t, page.Contacts[1].ID, page.Last)
}
