package testenv

import (
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // as the worker: zones never depend on the machine
)

// Sample is a phone number that rings in exactly one time zone.
type Sample struct {
	Phone, Zone string
}

// Samples are single-zone numbers spread around the globe, no two zones
// more than three hours apart, so at any instant one of them is in the
// middle of its day and one in the middle of its night. They are only ever
// "dialed" through the callee simulator (DIALER=sim); the US, UK and
// Australian ones are in the ranges reserved for fiction.
// TestSamplesRingInTheirZone checks each against libphonenumber's data.
var Samples = []Sample{
	{"+18085550100", "Pacific/Honolulu"},
	{"+14155550100", "America/Los_Angeles"},
	{"+16025550100", "America/Phoenix"},
	{"+13125550100", "America/Chicago"},
	{"+12125550123", "America/New_York"},
	{"+551155550100", "America/Sao_Paulo"},
	{"+2382601234", "Atlantic/Cape_Verde"},
	{"+442079460123", "Europe/London"},
	{"+33155550100", "Europe/Paris"},
	{"+302101234567", "Europe/Athens"},
	{"+74951234567", "Europe/Moscow"},
	{"+97143123456", "Asia/Dubai"},
	{"+998712345678", "Asia/Tashkent"},
	{"+911123456789", "Asia/Calcutta"},
	{"+88029123456", "Asia/Dhaka"},
	{"+6621234567", "Asia/Bangkok"},
	{"+861012345678", "Asia/Shanghai"},
	{"+81355550199", "Asia/Tokyo"},
	{"+61255501234", "Australia/Sydney"},
	{"+6493001234", "Pacific/Auckland"},
}

// Local times the samples are chosen for: mid-afternoon is 5.5 hours from
// either end of the 08:00–21:00 calling hours, so a test that starts then
// has hours to place its calls; the middle of the night is as far from
// them.
const (
	Afternoon = 14*60 + 30
	Night     = 2*60 + 30
)

// SampleAt returns the sample whose local time at now is closest to
// minute (minutes after local midnight).
func SampleAt(now time.Time, minute int) Sample {
	best, bestDist := Samples[0], 24*60
	for i, s := range Samples {
		if d := minutesApart(now.In(sampleZones()[i]), minute); d < bestDist {
			best, bestDist = s, d
		}
	}
	return best
}

// minutesApart is how far local time l is from minute, either way round
// the clock.
func minutesApart(l time.Time, minute int) int {
	d := (l.Hour()*60 + l.Minute() - minute + 24*60) % (24 * 60)
	return min(d, 24*60-d)
}

var sampleZones = sync.OnceValue(func() []*time.Location {
	locs := make([]*time.Location, len(Samples))
	for i, s := range Samples {
		loc, err := time.LoadLocation(s.Zone)
		if err != nil {
			panic("testenv: sample zone " + s.Zone + ": " + err.Error())
		}
		locs[i] = loc
	}
	return locs
})

// DaytimeNumber returns a number where it is mid-afternoon now, for a
// test that places a call: calls are only placed between 08:00 and 21:00
// where the callee is, and the test must pass at any hour of the day
// without bending that rule.
func DaytimeNumber(t testing.TB) string {
	t.Helper()
	s := SampleAt(time.Now(), Afternoon)
	t.Logf("daytime number: %s (%s)", s.Phone, s.Zone)
	return s.Phone
}

// NighttimeNumber returns a number where it is the middle of the night
// now, for a test that checks a call is not placed.
func NighttimeNumber(t testing.TB) string {
	t.Helper()
	s := SampleAt(time.Now(), Night)
	t.Logf("night-time number: %s (%s)", s.Phone, s.Zone)
	return s.Phone
}
