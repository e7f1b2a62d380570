package campaign

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	// The image may ship without /usr/share/zoneinfo; calling hours must
	// never depend on what the container happens to contain.
	_ "time/tzdata"
)

// The outer limits of calling hours in the callee's local time. No campaign
// setting can widen them: hours outside are cut back to them.
const (
	EarliestCallMinute = 8 * 60  // 08:00
	LatestCallMinute   = 21 * 60 // 21:00
)

// Defaults for a campaign that sets no calling hours or days: business
// hours on weekdays, because the people called are doctors' offices.
const (
	DefaultHoursStart = "09:00"
	DefaultHoursEnd   = "18:00"
)

// DefaultCallingDays are used when a campaign names none.
var DefaultCallingDays = []string{"mon", "tue", "wed", "thu", "fri"}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// Hours are calling hours: allowed weekdays and a daily range [start, end)
// of local wall-clock time, evaluated in the callee's time zone. Wall clock
// is what the rule means ("not before 8 in the morning"), so on a DST
// change the range is as long or as short as the local clock makes it.
type Hours struct {
	days       [7]bool // by time.Weekday
	start, end int     // minutes after local midnight, start < end
}

// ParseHours builds calling hours from "HH:MM" bounds and lowercase
// three-letter day names ("mon" ... "sun"). Empty values take the defaults;
// the range is then cut to the 08:00–21:00 outer limits.
func ParseHours(start, end string, days []string) (Hours, error) {
	h, err := parseHours(start, end, days)
	if err != nil {
		return Hours{}, err
	}
	h.start = max(h.start, EarliestCallMinute)
	h.end = min(h.end, LatestCallMinute)
	if h.start >= h.end {
		return Hours{}, fmt.Errorf("schedule.calling_hours_start/end: %s–%s lies outside the %s–%s calling limits",
			orDefault(start, DefaultHoursStart), orDefault(end, DefaultHoursEnd),
			clockString(EarliestCallMinute), clockString(LatestCallMinute))
	}
	return h, nil
}

// parseHours parses without the outer limits, so the DST arithmetic can be
// tested on ranges that cross the hours a transition skips or repeats.
func parseHours(start, end string, days []string) (Hours, error) {
	var h Hours
	var errs []error
	var err error
	if h.start, err = parseClock(orDefault(start, DefaultHoursStart), false); err != nil {
		errs = append(errs, fmt.Errorf("schedule.calling_hours_start: %w", err))
	}
	if h.end, err = parseClock(orDefault(end, DefaultHoursEnd), true); err != nil {
		errs = append(errs, fmt.Errorf("schedule.calling_hours_end: %w", err))
	}
	if len(errs) == 0 && h.start >= h.end {
		errs = append(errs, fmt.Errorf("schedule.calling_hours_start: %s is not before calling_hours_end %s",
			clockString(h.start), clockString(h.end)))
	}
	if len(days) == 0 {
		days = DefaultCallingDays
	}
	for _, d := range days {
		wd, ok := dayNames[strings.ToLower(strings.TrimSpace(d))]
		if !ok {
			errs = append(errs, fmt.Errorf("schedule.calling_days: %q is not one of mon tue wed thu fri sat sun", d))
			continue
		}
		h.days[wd] = true
	}
	return h, errors.Join(errs...)
}

// parseClock reads "HH:MM" as minutes after midnight; "24:00" is allowed
// as an end.
func parseClock(s string, isEnd bool) (int, error) {
	hh, mm, ok := strings.Cut(s, ":")
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	switch {
	case !ok || len(hh) != 2 || len(mm) != 2 || err1 != nil || err2 != nil,
		h < 0 || h > 24 || m < 0 || m > 59,
		h == 24 && (m != 0 || !isEnd):
		return 0, fmt.Errorf("%q is not a time of day as HH:MM", s)
	}
	return h*60 + m, nil
}

func clockString(min int) string { return fmt.Sprintf("%02d:%02d", min/60, min%60) }

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Open reports whether t falls inside the calling hours in loc.
func (h Hours) Open(t time.Time, loc *time.Location) bool {
	l := t.In(loc)
	m := l.Hour()*60 + l.Minute()
	return h.days[l.Weekday()] && m >= h.start && m < h.end
}

// maxZoneOffset bounds any zone's distance from UTC (real zones stay
// within ±14h), which bounds where a local day can lie in absolute time.
const maxZoneOffset = 18 * time.Hour

// NextOpen returns the first instant at or after t that is inside the
// calling hours in loc, and false if there is none (no day allowed).
func (h Hours) NextOpen(t time.Time, loc *time.Location) (time.Time, bool) {
	if h.Open(t, loc) {
		return t, true
	}
	y, m, d := t.In(loc).Date()
	// From the day before: a fall-back at midnight can put the local clock
	// back into yesterday. Eight more days cover a whole week.
	for i := -1; i <= 8; i++ {
		day := time.Date(y, m, d+i, 0, 0, 0, 0, time.UTC)
		if !h.days[day.Weekday()] {
			continue
		}
		from := day.Add(time.Duration(h.start) * time.Minute)
		to := day.Add(time.Duration(h.end) * time.Minute)
		if u, ok := firstWallInRange(t, loc, from, to); ok {
			return u, true
		}
	}
	return time.Time{}, false
}

// firstWallInRange returns the first instant u >= t whose local wall clock
// in loc lies in [from, to), where from and to are wall-clock readings
// written as UTC times. Within one zone period (constant offset o) the wall
// clock is u+o, so the answer there is an interval; periods are visited in
// order, so the first non-empty one holds the answer. This is exact across
// skipped and repeated hours, where constructing the wall time with
// time.Date is ambiguous.
func firstWallInRange(t time.Time, loc *time.Location, from, to time.Time) (time.Time, bool) {
	u := t
	if lo := from.Add(-maxZoneOffset); lo.After(u) {
		u = lo
	}
	limit := to.Add(maxZoneOffset)
	for u.Before(limit) {
		lu := u.In(loc)
		_, offSec := lu.Zone()
		off := time.Duration(offSec) * time.Second
		_, periodEnd := lu.ZoneBounds()
		lo := from.Add(-off)
		if lo.Before(u) {
			lo = u
		}
		hi := to.Add(-off)
		if !periodEnd.IsZero() && periodEnd.Before(hi) {
			hi = periodEnd
		}
		if lo.Before(hi) {
			return lo.In(loc), true
		}
		if periodEnd.IsZero() || !periodEnd.After(u) {
			break
		}
		u = periodEnd
	}
	return time.Time{}, false
}

// zones caches loaded time zones: LoadLocation reads and parses tzdata on
// every call, and dispatch evaluates the same few zones all day. Only
// successful loads are cached, so the cache is bounded by the zone names
// that exist.
var zones sync.Map // string → *time.Location

// LoadZone loads an IANA time zone such as "America/New_York". The error
// names the zone. "Local" is refused: it means the server's zone, which
// says nothing about the person called.
func LoadZone(name string) (*time.Location, error) {
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location), nil
	}
	switch {
	case name == "":
		return nil, errors.New("time zone is empty")
	case name == "Local" || strings.TrimSpace(name) != name:
		return nil, fmt.Errorf("time zone %q is not an IANA time zone name like America/New_York", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("time zone %q is not an IANA time zone name like America/New_York", name)
	}
	zones.Store(name, loc)
	return loc, nil
}

// Calendar says when a campaign may call a contact: its calling hours in
// the contact's time zone, inside the campaign's window.
type Calendar struct {
	Hours Hours
	// Start and End bound the campaign's window; zero means unbounded.
	Start, End time.Time
	// DefaultZone is used for contacts that have no time zone.
	DefaultZone *time.Location
}

// Zone is the contact's time zone, or the campaign's default when the
// contact has none.
func (c Calendar) Zone(contactZone string) (*time.Location, error) {
	if contactZone == "" {
		if c.DefaultZone == nil {
			return nil, errors.New("contact has no time zone and the campaign has no schedule.default_time_zone")
		}
		return c.DefaultZone, nil
	}
	return LoadZone(contactZone)
}

// Open reports whether a contact in loc may be called at t by the
// campaign's hours (the law's hours where the number rings are
// ContactWindow's part).
func (c Calendar) Open(t time.Time, loc *time.Location) bool { return c.window(loc).Open(t) }

// Ended reports whether the campaign's window has closed for good at t.
func (c Calendar) Ended(t time.Time) bool { return !c.End.IsZero() && !t.Before(c.End) }

// NextOpen returns the first instant at or after t when a contact in loc
// may be called by the campaign's hours, and false when the campaign's
// window closes first.
func (c Calendar) NextOpen(t time.Time, loc *time.Location) (time.Time, bool) {
	return c.window(loc).NextOpen(t)
}
