package campaign

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func utc(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := LoadZone(name)
	require.NoError(t, err)
	return loc
}

var everyDay = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

func TestParseHoursClampsToTheOuterLimits(t *testing.T) {
	t.Parallel()
	h, err := ParseHours("06:00", "23:30", everyDay)
	require.NoError(t, err)
	require.Equal(t, 8*60, h.start, "nothing before 08:00")
	require.Equal(t, 21*60, h.end, "nothing after 21:00")

	h, err = ParseHours("", "", nil)
	require.NoError(t, err)
	require.Equal(t, 9*60, h.start)
	require.Equal(t, 18*60, h.end)
	require.Equal(t, [7]bool{false, true, true, true, true, true, false}, h.days, "Mon-Fri by default")
}

func TestParseHoursErrorsNameTheField(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		start, end string
		days       []string
		want       string
	}{
		{"9:00", "17:00", nil, `schedule.calling_hours_start: "9:00" is not a time of day`},
		{"09:00", "25:00", nil, `schedule.calling_hours_end: "25:00"`},
		{"24:00", "25:00", nil, `schedule.calling_hours_start: "24:00"`},
		{"17:00", "09:00", nil, "schedule.calling_hours_start: 17:00 is not before calling_hours_end 09:00"},
		{"21:30", "23:00", nil, "lies outside the 08:00–21:00 calling limits"},
		{"06:00", "07:59", nil, "lies outside the 08:00–21:00 calling limits"},
		{"09:00", "17:00", []string{"mon", "funday"}, `schedule.calling_days: "funday"`},
	} {
		_, err := ParseHours(tc.start, tc.end, tc.days)
		require.ErrorContains(t, err, tc.want, "%s-%s %v", tc.start, tc.end, tc.days)
	}
}

func TestLoadZone(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Sydney", "UTC"} {
		loc, err := LoadZone(name)
		require.NoError(t, err, name)
		require.Equal(t, name, loc.String())
	}
	for _, name := range []string{"Mars/Olympus_Mons", "Local", "america/new_york ", "../../etc/passwd", "EST5EDT,M3.2.0"} {
		_, err := LoadZone(name)
		require.ErrorContains(t, err, `"`+name+`"`, "the error names the zone")
	}
	_, err := LoadZone("")
	require.ErrorContains(t, err, "time zone is empty")
}

func TestOpenAcrossTimeZones(t *testing.T) {
	t.Parallel()
	all, err := ParseHours("08:00", "21:00", everyDay)
	require.NoError(t, err)
	weekdays, err := ParseHours("09:00", "17:00", nil)
	require.NoError(t, err)
	for _, tc := range []struct {
		name  string
		hours Hours
		zone  string
		at    time.Time
		open  bool
	}{
		// Los Angeles is on PDT (UTC-7) from 2026-03-08.
		{"LA 07:59 PDT", all, "America/Los_Angeles", utc("2026-03-10 14:59"), false},
		{"LA 08:00 PDT", all, "America/Los_Angeles", utc("2026-03-10 15:00"), true},
		{"LA 20:59 PDT", all, "America/Los_Angeles", utc("2026-03-11 03:59"), true},
		{"LA 21:00 PDT", all, "America/Los_Angeles", utc("2026-03-11 04:00"), false},
		// London is on GMT until 2026-03-29, BST after.
		{"London 07:30 GMT", all, "Europe/London", utc("2026-03-27 07:30"), false},
		{"London 08:00 GMT", all, "Europe/London", utc("2026-03-27 08:00"), true},
		{"London 08:00 BST", all, "Europe/London", utc("2026-03-30 07:00"), true},
		{"London 20:30 BST is 19:30 UTC", all, "Europe/London", utc("2026-03-30 19:30"), true},
		{"London 21:00 BST", all, "Europe/London", utc("2026-03-30 20:00"), false},
		// Kolkata is UTC+5:30, no DST.
		{"Kolkata 07:59", all, "Asia/Kolkata", utc("2026-03-10 02:29"), false},
		{"Kolkata 08:00", all, "Asia/Kolkata", utc("2026-03-10 02:30"), true},
		{"Kolkata 21:00", all, "Asia/Kolkata", utc("2026-03-10 15:30"), false},
		// Sydney is on AEDT (UTC+11) until 2026-04-05; its day is ahead of UTC's.
		{"Sydney Wed 08:00 is Tue in UTC", all, "Australia/Sydney", utc("2026-03-10 21:00"), true},
		{"Sydney 07:59", all, "Australia/Sydney", utc("2026-03-10 20:59"), false},
		{"Sydney Sat 10:00 is Fri in UTC", weekdays, "Australia/Sydney", utc("2026-03-13 23:00"), false},
		{"Sydney Fri 10:00", weekdays, "Australia/Sydney", utc("2026-03-12 23:00"), true},
		{"New York Sat", weekdays, "America/New_York", utc("2026-03-14 15:00"), false},
		{"New York Mon 09:00 EDT", weekdays, "America/New_York", utc("2026-03-09 13:00"), true},
		{"New York Mon 08:59 EDT", weekdays, "America/New_York", utc("2026-03-09 12:59"), false},
	} {
		require.Equal(t, tc.open, tc.hours.Open(tc.at, mustZone(t, tc.zone)), tc.name)
	}
}

func TestNextOpenAcrossTimeZonesAndDST(t *testing.T) {
	t.Parallel()
	all, err := ParseHours("08:00", "21:00", everyDay)
	require.NoError(t, err)
	weekdays, err := ParseHours("09:00", "18:00", nil)
	require.NoError(t, err)
	// Ranges beyond the outer limits, to put the ends of a range inside the
	// hour a DST change skips or repeats (New York changes at 02:00,
	// London at 01:00 GMT).
	raw := func(start, end string) Hours {
		h, err := parseHours(start, end, everyDay)
		require.NoError(t, err)
		return h
	}
	for _, tc := range []struct {
		name  string
		hours Hours
		zone  string
		from  time.Time
		want  time.Time
	}{
		{"already open", all, "America/New_York", utc("2026-03-10 14:00"), utc("2026-03-10 14:00")},
		{"NY Friday evening to Monday 09:00 EDT", weekdays, "America/New_York", utc("2026-03-13 22:00"), utc("2026-03-16 13:00")},
		{"NY spring forward: Sunday 08:00 is EDT", all, "America/New_York", utc("2026-03-08 02:00"), utc("2026-03-08 12:00")},
		{"NY fall back: Sunday 08:00 is EST", all, "America/New_York", utc("2026-11-01 01:00"), utc("2026-11-01 13:00")},
		{"LA after 21:00 PDT to 08:00 next day", all, "America/Los_Angeles", utc("2026-03-11 04:00"), utc("2026-03-11 15:00")},
		{"London the morning after the change", all, "Europe/London", utc("2026-03-28 21:00"), utc("2026-03-29 07:00")},
		{"Kolkata at 21:00 to 08:00", all, "Asia/Kolkata", utc("2026-03-10 15:30"), utc("2026-03-11 02:30")},
		{"Kolkata Friday night to Monday", weekdays, "Asia/Kolkata", utc("2026-03-13 16:00"), utc("2026-03-16 03:30")},
		{"Sydney fall back: Sunday 08:00 is AEST", all, "Australia/Sydney", utc("2026-04-04 10:00"), utc("2026-04-04 22:00")},
		{"Sydney before the change: 08:00 AEDT", all, "Australia/Sydney", utc("2026-04-02 10:00"), utc("2026-04-02 21:00")},

		// 01:30–02:30 on the NY spring-forward day ends in the skipped hour:
		// open from 01:30 EST (06:30 UTC) until the clock jumps to 03:00.
		{"range ending in the skipped hour, open", raw("01:30", "02:30"), "America/New_York", utc("2026-03-08 06:59"), utc("2026-03-08 06:59")},
		{"range ending in the skipped hour, closed at the jump", raw("01:30", "02:30"), "America/New_York", utc("2026-03-08 07:00"), utc("2026-03-09 05:30")},
		// 02:30–04:00 starts in the skipped hour: the first instant whose
		// local time is 02:30 or later is 03:00 EDT.
		{"range starting in the skipped hour", raw("02:30", "04:00"), "America/New_York", utc("2026-03-08 05:00"), utc("2026-03-08 07:00")},
		// 01:15–05:00 on the fall-back day starts in the repeated hour: the
		// first 01:15 is EDT.
		{"range starting in the repeated hour", raw("01:15", "05:00"), "America/New_York", utc("2026-11-01 04:00"), utc("2026-11-01 05:15")},
		// 00:30–01:30 ends in the repeated hour: it closes at 01:30 EDT and
		// opens again when the clock reads 01:00 EST, as the local clock says.
		{"range ending in the repeated hour reopens", raw("00:30", "01:30"), "America/New_York", utc("2026-11-01 05:45"), utc("2026-11-01 06:00")},
		// London skips 01:00–02:00 GMT on 2026-03-29.
		{"London range ending in the skipped hour", raw("00:30", "01:30"), "Europe/London", utc("2026-03-29 01:00"), utc("2026-03-29 23:30")},
	} {
		loc := mustZone(t, tc.zone)
		got, ok := tc.hours.NextOpen(tc.from, loc)
		require.True(t, ok, tc.name)
		require.True(t, tc.want.Equal(got), "%s: got %s (%s), want %s", tc.name, got.UTC(), got, tc.want)
		requireNextOpen(t, tc.hours, loc, tc.from, got)
	}
}

func TestOpenInTheRepeatedHourFollowsTheLocalClock(t *testing.T) {
	t.Parallel()
	h, err := parseHours("00:30", "01:30", everyDay)
	require.NoError(t, err)
	ny := mustZone(t, "America/New_York")
	require.True(t, h.Open(utc("2026-11-01 05:15"), ny), "01:15 EDT")
	require.False(t, h.Open(utc("2026-11-01 05:45"), ny), "01:45 EDT")
	require.True(t, h.Open(utc("2026-11-01 06:15"), ny), "01:15 EST, the second time round")
	require.False(t, h.Open(utc("2026-11-01 06:30"), ny), "01:30 EST")
}

func TestNextOpenWithNoDayAllowed(t *testing.T) {
	t.Parallel()
	var never Hours
	_, ok := never.NextOpen(utc("2026-03-10 12:00"), time.UTC)
	require.False(t, ok)
}

// requireNextOpen checks NextOpen's contract for one answer: got is open,
// not before from, and no minute between from and got is open (open-ness
// only changes on minute boundaries in current zones).
func requireNextOpen(t testing.TB, h Hours, loc *time.Location, from, got time.Time) {
	t.Helper()
	require.False(t, got.Before(from), "NextOpen(%s) = %s is before it", from, got)
	require.True(t, h.Open(got, loc), "NextOpen(%s) = %s is not open", from, got)
	require.LessOrEqual(t, got.Sub(from), 9*24*time.Hour, "a week always has an open day")
	for x := from; x.Before(got); x = x.Truncate(time.Minute).Add(time.Minute) {
		require.False(t, h.Open(x, loc), "NextOpen(%s) = %s skipped the open instant %s", from, got, x)
	}
}

func TestNextOpenRandomized(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	zones := []string{"America/New_York", "America/Los_Angeles", "Europe/London", "Australia/Sydney",
		"Asia/Kolkata", "Australia/Lord_Howe", "Asia/Kathmandu", "America/St_Johns", "Pacific/Chatham"}
	base := utc("2026-01-01 00:00")
	for i := range 300 {
		start := r.IntN(23 * 60)
		end := start + 1 + r.IntN(24*60-start)
		var days []string
		for _, d := range everyDay {
			if r.IntN(2) == 0 {
				days = append(days, d)
			}
		}
		if len(days) == 0 {
			days = []string{"wed"}
		}
		h, err := parseHours(clockString(start), clockString(end), days)
		require.NoError(t, err)
		loc := mustZone(t, zones[i%len(zones)])
		from := base.Add(time.Duration(r.Int64N(int64(365 * 24 * time.Hour))))
		got, ok := h.NextOpen(from, loc)
		require.True(t, ok, "%s %s-%s %v from %s", loc, clockString(start), clockString(end), days, from)
		requireNextOpen(t, h, loc, from, got)
	}
}

func TestCalendarWindow(t *testing.T) {
	t.Parallel()
	h, err := ParseHours("08:00", "21:00", everyDay)
	require.NoError(t, err)
	ny := mustZone(t, "America/New_York")
	cal := Calendar{Hours: h, Start: utc("2026-03-10 18:00"), End: utc("2026-03-12 00:00"), DefaultZone: ny}

	require.False(t, cal.Open(utc("2026-03-10 14:00"), ny), "before the window starts")
	require.True(t, cal.Open(utc("2026-03-10 18:00"), ny))
	got, ok := cal.NextOpen(utc("2026-03-10 12:00"), ny)
	require.True(t, ok)
	require.Equal(t, utc("2026-03-10 18:00"), got.UTC(), "the window's start, which is inside calling hours")

	got, ok = cal.NextOpen(utc("2026-03-11 02:00"), ny) // 22:00 EDT on the 10th
	require.True(t, ok)
	require.Equal(t, utc("2026-03-11 12:00"), got.UTC())

	_, ok = cal.NextOpen(utc("2026-03-12 01:00"), ny) // 21:00 EDT on the 11th, window ends before the 12th's 08:00
	require.False(t, ok)
	require.True(t, cal.Ended(utc("2026-03-12 00:00")))
	require.False(t, cal.Ended(utc("2026-03-11 23:59")))

	loc, err := cal.Zone("")
	require.NoError(t, err)
	require.Equal(t, ny, loc, "no contact zone: the campaign default")
	_, err = cal.Zone("Nowhere/Special")
	require.ErrorContains(t, err, "Nowhere/Special")
	_, err = Calendar{Hours: h}.Zone("")
	require.ErrorContains(t, err, "default_time_zone")
}

func FuzzLoadZone(f *testing.F) {
	for _, s := range []string{"America/New_York", "UTC", "Local", "", "../x", "Europe/London\x00", strings.Repeat("A/", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		loc, err := LoadZone(name)
		if err != nil {
			require.Contains(t, err.Error(), "time zone")
			return
		}
		require.NotNil(t, loc)
		require.NotEqual(t, "Local", name)
		require.NotEmpty(t, name)
	})
}

func FuzzNextOpen(f *testing.F) {
	f.Add("America/New_York", int64(1772935200), uint16(90), uint16(150), uint8(0x7f))
	f.Add("Europe/London", int64(1774746000), uint16(480), uint16(1260), uint8(0x3e))
	f.Add("Australia/Lord_Howe", int64(1775300000), uint16(100), uint16(160), uint8(0x01))
	f.Fuzz(func(t *testing.T, zone string, unix int64, start, end uint16, days uint8) {
		loc, err := LoadZone(zone)
		if err != nil {
			return
		}
		s, e := int(start)%(24*60), int(end)%(24*60+1)
		if s >= e {
			return
		}
		var names []string
		for i, d := range []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"} {
			if days&(1<<i) != 0 {
				names = append(names, d)
			}
		}
		if len(names) == 0 {
			return
		}
		h, err := parseHours(clockString(s), clockString(e), names)
		require.NoError(t, err)
		// Current-era instants only: historical local mean times have
		// offsets in seconds, which minute-based hours do not model.
		from := time.Unix(1577836800+unix%(20*365*86400+1), 0)
		if unix < 0 {
			from = time.Unix(1577836800-unix%(20*365*86400+1), 0)
		}
		got, ok := h.NextOpen(from, loc)
		require.True(t, ok)
		requireNextOpen(t, h, loc, from, got)
	})
}
