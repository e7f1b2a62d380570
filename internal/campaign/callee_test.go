package campaign

import (
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/phone"
	"github.com/stretchr/testify/require"
)

// legalAt is one expectation at a fixed clock: open or not, and the next
// opening from there.
type legalAt struct {
	name string
	at   time.Time
	open bool
	next time.Time // zero: the same as at (when open)
}

func checkWindow(t *testing.T, w Window, cases []legalAt) {
	t.Helper()
	for _, tc := range cases {
		require.Equal(t, tc.open, w.Open(tc.at), tc.name)
		if tc.open {
			require.Empty(t, w.Closed(tc.at), tc.name)
		} else {
			require.NotEmpty(t, w.Closed(tc.at), tc.name)
		}
		want := tc.next
		if want.IsZero() {
			want = tc.at
		}
		got, ok := w.NextOpen(tc.at)
		require.True(t, ok, tc.name)
		require.Equal(t, want.UTC(), got.UTC(), "%s: next opening", tc.name)
		require.True(t, w.Open(got), "%s: the next opening is open", tc.name)
		// Nothing between the two is open: probe every minute.
		for x := tc.at; x.Before(got); x = x.Add(time.Minute) {
			require.False(t, w.Open(x), "%s: %s is open, before the next opening %s", tc.name, x, got)
		}
	}
}

// The incident: +81355550199 was dialled at 00:29 Tokyo time.
func TestLegalWindowSingleZone(t *testing.T) {
	t.Parallel()
	w, err := LegalWindow("+81355550199", "")
	require.NoError(t, err)
	checkWindow(t, w, []legalAt{
		{"00:29 JST, the incident", utc("2026-11-28 15:29"), false, utc("2026-11-28 23:00")},
		{"07:59 JST", utc("2026-11-28 22:59"), false, utc("2026-11-28 23:00")},
		{"08:00 JST", utc("2026-11-28 23:00"), true, time.Time{}},
		{"20:59 JST", utc("2026-11-29 11:59"), true, time.Time{}},
		{"21:00 JST", utc("2026-11-29 12:00"), false, utc("2026-11-29 23:00")},
	})
	require.Contains(t, w.Closed(utc("2026-11-28 15:29")), "it is Sun 00:29 JST in Asia/Tokyo")
}

// Numbers that may ring in several zones: every zone must be inside
// 08:00–21:00, so the window runs from 08:00 in the westernmost zone to
// 21:00 in the easternmost.
func TestLegalWindowSeveralZones(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		number string
		zones  []string
		cases  []legalAt
	}{
		{"+12085550100", []string{"America/Boise", "America/Los_Angeles"}, []legalAt{
			// Summer: Boise UTC-6, Los Angeles UTC-7.
			{"08:30 Boise is 07:30 Los Angeles", utc("2026-07-01 14:30"), false, utc("2026-07-01 15:00")},
			{"08:00 Los Angeles", utc("2026-07-01 15:00"), true, time.Time{}},
			{"20:59 Boise", utc("2026-07-02 02:59"), true, time.Time{}},
			{"21:00 Boise is 20:00 Los Angeles", utc("2026-07-02 03:00"), false, utc("2026-07-02 15:00")},
		}},
		{"+19075550100", []string{"America/Adak", "America/Anchorage"}, []legalAt{
			// Winter: Anchorage UTC-9, Adak UTC-10.
			{"08:00 Anchorage is 07:00 Adak", utc("2026-01-15 17:00"), false, utc("2026-01-15 18:00")},
			{"20:30 Anchorage", utc("2026-01-16 05:30"), true, time.Time{}},
			{"21:00 Anchorage", utc("2026-01-16 06:00"), false, utc("2026-01-16 18:00")},
		}},
		{"+78001234567", []string{"Asia/Almaty", "Asia/Aqtobe", "Europe/Moscow"}, []legalAt{
			// Almaty and Aqtobe UTC+5, Moscow UTC+3.
			{"08:00 Almaty is 06:00 Moscow", utc("2026-02-10 03:00"), false, utc("2026-02-10 05:00")},
			{"08:00 Moscow", utc("2026-02-10 05:00"), true, time.Time{}},
			{"20:59 Almaty", utc("2026-02-10 15:59"), true, time.Time{}},
			{"21:00 Almaty is 19:00 Moscow", utc("2026-02-10 16:00"), false, utc("2026-02-11 05:00")},
		}},
		{"+61881234567", []string{"Australia/Adelaide", "Australia/Perth"}, []legalAt{
			// Perth UTC+8 always; Adelaide UTC+9:30, and +10:30 from
			// 02:00 on Sunday 4 October 2026.
			{"07:59 Perth", utc("2026-10-02 23:59"), false, utc("2026-10-03 00:00")},
			{"Saturday 20:15 Adelaide", utc("2026-10-03 10:45"), true, time.Time{}},
			{"Sunday 21:15 Adelaide (summer time)", utc("2026-10-04 10:45"), false, utc("2026-10-05 00:00")},
			{"Sunday 20:15 Adelaide (summer time)", utc("2026-10-04 09:45"), true, time.Time{}},
		}},
	} {
		got, err := phone.Zones(tc.number)
		require.NoError(t, err, tc.number)
		require.Equal(t, tc.zones, got, tc.number)
		w, err := LegalWindow(tc.number, "")
		require.NoError(t, err, tc.number)
		checkWindow(t, w, tc.cases)
	}
}

// Across DST changes the window follows the local wall clock.
func TestLegalWindowDSTEdges(t *testing.T) {
	t.Parallel()
	ny, err := LegalWindow("+12125550123", "")
	require.NoError(t, err)
	checkWindow(t, ny, []legalAt{
		// Spring forward, Sunday 8 March 2026 at 02:00 EST.
		{"Saturday 21:00 EST", utc("2026-03-08 02:00"), false, utc("2026-03-08 12:00")},
		{"Sunday 07:59 EDT", utc("2026-03-08 11:59"), false, utc("2026-03-08 12:00")},
		// Fall back, Sunday 1 November 2026 at 02:00 EDT.
		{"Saturday 21:00 EDT", utc("2026-11-01 01:00"), false, utc("2026-11-01 13:00")},
		{"Sunday 07:30 EST", utc("2026-11-01 12:30"), false, utc("2026-11-01 13:00")},
	})
	london, err := LegalWindow("+442079460123", "")
	require.NoError(t, err)
	checkWindow(t, london, []legalAt{
		// BST starts Sunday 29 March 2026 at 01:00 GMT.
		{"Sunday 07:30 BST", utc("2026-03-29 06:30"), false, utc("2026-03-29 07:00")},
		{"Sunday 20:30 BST", utc("2026-03-29 19:30"), true, time.Time{}},
		{"Sunday 21:00 BST", utc("2026-03-29 20:00"), false, utc("2026-03-30 07:00")},
	})
}

func TestLegalWindowUnknownZone(t *testing.T) {
	t.Parallel()
	for _, number := range []string{"+15551234567", "+88212345678"} {
		_, err := LegalWindow(number, "")
		require.ErrorIs(t, err, ErrNoTimeZone, number)
		require.ErrorIs(t, err, phone.ErrNoZone, number)
	}
	// A named zone must be one of the number's country.
	_, err := LegalWindow("+81355550199", "America/New_York")
	require.ErrorIs(t, err, ErrNoTimeZone)
	require.ErrorIs(t, err, phone.ErrZoneNotInCountry)
}

// A toll-free number may ring anywhere from Guam to Pago Pago. Around the
// clock those zones are 11.5 hours apart in June (Guam's 08:00 is the
// previous evening in the Americas), which leaves 1.5 hours a day inside
// 08:00–21:00 in all of them: 08:00 in Guam to 21:00 in St John's. Naming
// the callee's zone gives the whole day back.
func TestLegalWindowTollFree(t *testing.T) {
	t.Parallel()
	w, err := LegalWindow("+18885550100", "")
	require.NoError(t, err)
	checkWindow(t, w, []legalAt{
		{"noon UTC", utc("2026-06-01 12:00"), false, utc("2026-06-01 22:00")},
		{"08:00 Guam", utc("2026-06-01 22:00"), true, time.Time{}},
		{"21:00 St John's", utc("2026-06-01 23:30"), false, utc("2026-06-02 22:00")},
	})

	chicago, err := LegalWindow("+18885550100", "America/Chicago")
	require.NoError(t, err)
	next, ok := chicago.NextOpen(utc("2026-06-01 12:00"))
	require.True(t, ok)
	require.Equal(t, utc("2026-06-01 13:00"), next.UTC(), "08:00 CDT")
}

// A contact filed under Tokyo whose number is in San Francisco: the
// campaign's hours hold in Tokyo, the law's in San Francisco.
func TestContactWindowCombinesBothZones(t *testing.T) {
	t.Parallel()
	cal := newYorkCalendar(t, "09:00", "18:00", everyDay)
	w, err := cal.ContactWindow("Asia/Tokyo", "+14155550100")
	require.NoError(t, err)
	checkWindow(t, w, []legalAt{
		// Winter: Tokyo UTC+9, San Francisco UTC-8.
		{"10:00 Tokyo is 17:00 San Francisco", utc("2026-01-15 01:00"), true, time.Time{}},
		{"13:00 Tokyo is 20:00 San Francisco", utc("2026-01-15 04:00"), true, time.Time{}},
		{"14:00 Tokyo is 21:00 San Francisco", utc("2026-01-15 05:00"), false, utc("2026-01-16 00:00")},
		{"08:30 Tokyo, before the campaign's hours", utc("2026-01-14 23:30"), false, utc("2026-01-15 00:00")},
	})
	require.Contains(t, w.Closed(utc("2026-01-15 05:00")), "America/Los_Angeles")
	require.NotContains(t, w.Closed(utc("2026-01-15 05:00")), "Asia/Tokyo", "open there")

	_, err = cal.ContactWindow("", "+15551234567")
	require.ErrorIs(t, err, ErrNoTimeZone)

	// Campaign hours in Tokyo that never meet San Francisco's daytime.
	never, err := newYorkCalendar(t, "15:00", "21:00", everyDay).ContactWindow("Asia/Tokyo", "+14155550100")
	require.NoError(t, err)
	_, ok := never.NextOpen(utc("2026-01-15 00:00"))
	require.False(t, ok, "15:00–21:00 Tokyo is 22:00–04:00 in San Francisco")
}

func TestNextOpenFor(t *testing.T) {
	t.Parallel()
	w, err := LegalWindow("+81355550199", "")
	require.NoError(t, err)
	got, ok := w.NextOpenFor(utc("2026-11-29 11:59"), 2*time.Minute) // 20:59 JST: open, but not 2 min later
	require.True(t, ok)
	require.Equal(t, utc("2026-11-29 23:00"), got.UTC())
	got, ok = w.NextOpenFor(utc("2026-11-29 11:57"), 2*time.Minute)
	require.True(t, ok)
	require.Equal(t, utc("2026-11-29 11:57"), got.UTC())
}

// newYorkCalendar is a campaign's calendar with these hours and New York
// as its default zone.
func newYorkCalendar(t *testing.T, start, end string, days []string) Calendar {
	t.Helper()
	hours, err := ParseHours(start, end, days)
	require.NoError(t, err)
	return Calendar{Hours: hours, DefaultZone: mustZone(t, "America/New_York")}
}
