package fleet_test

import (
	"testing"

	"github.com/docshield/voice-worker/internal/fleet"
	"github.com/docshield/voice-worker/internal/health"
	"github.com/stretchr/testify/require"
)

// The MongoDB budget's advice names the smallest Atlas tier that holds the
// fleet, not a fixed one: a fleet already on M30's 3,000 is sent to M40.
func TestMongoBudgetNamesTheTierThatHoldsTheFleet(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		dynos, limit int
		level        health.Level
		advice       string
	}{
		{dynos: 10, limit: 1500, level: health.LevelOK},                                           // 520 of 1,490
		{dynos: 40, limit: 1500, level: health.LevelWarn, advice: "Atlas M20 or larger (3000"},    // 2,080
		{dynos: 60, limit: 3000, level: health.LevelWarn, advice: "Atlas M40 or larger (6000"},    // 3,120
		{dynos: 300, limit: 6000, level: health.LevelWarn, advice: "Atlas M50 or larger (16000"},  // 15,600
		{dynos: 310, limit: 16000, level: health.LevelWarn, advice: "Atlas M60 or larger (32000"}, // 16,120
		{dynos: 700, limit: 32000, level: health.LevelWarn, advice: "no Atlas tier up to M60"},    // 36,400
	} {
		found := fleet.VerifyBudgets(fleet.BudgetInput{Dynos: tc.dynos, Concurrency: 40, MongoPool: 50,
			MongoMaxConnections: tc.limit, RedisMaxConnections: 1 << 20})
		var mongo health.Finding
		for _, f := range found {
			if f.Item == "mongodb connections" {
				mongo = f
			}
		}
		require.Equal(t, tc.level, mongo.Level, "%d dynos at %d: %s", tc.dynos, tc.limit, mongo.Detail)
		if tc.advice != "" {
			require.Contains(t, mongo.Detail, tc.advice)
		}
	}
}
