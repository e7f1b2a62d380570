package testenv

import (
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/phone"
	"github.com/stretchr/testify/require"
)

func TestSamplesRingInTheirZone(t *testing.T) {
	for _, s := range Samples {
		zones, err := phone.Zones(s.Phone)
		require.NoError(t, err, s.Phone)
		require.Equal(t, []string{s.Zone}, zones, s.Phone)
	}
}

// At every hour of a year, some sample is within 90 minutes of
// mid-afternoon (so at least 4.5 hours inside the calling hours) and some
// within 90 minutes of the middle of the night.
func TestSamplesCoverEveryHour(t *testing.T) {
	for at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC); at.Year() == 2026; at = at.Add(time.Hour) {
		for _, target := range []int{Afternoon, Night} {
			s := SampleAt(at, target)
			loc, err := time.LoadLocation(s.Zone)
			require.NoError(t, err)
			l := at.In(loc)
			require.LessOrEqual(t, minutesApart(l, target), 90, "%s: %s is %s", at, s.Zone, l.Format("15:04"))
		}
	}
}
