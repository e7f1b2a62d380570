package campaign

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/docshield/voice-worker/internal/phone"
)

// LegalHours are the hours the law allows a call in, in the callee's local
// time, every day of the week: 08:00–21:00. They hold for every dial,
// campaign or inline, in every zone the callee's number may ring in.
var LegalHours = Hours{days: [7]bool{true, true, true, true, true, true, true},
	start: EarliestCallMinute, end: LatestCallMinute}

// ErrNoTimeZone means the callee's local time cannot be known, so the call
// is never placed. It wraps phone.ErrNoZone or phone.ErrZoneNotInCountry.
var ErrNoTimeZone = errors.New("the callee's local time cannot be known")

// NumberZones loads the zones a number may ring in (phone.Zones).
func NumberZones(number string) ([]*time.Location, error) {
	names, err := phone.Zones(number)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoTimeZone, err)
	}
	return loadZones(names)
}

func loadZones(names []string) ([]*time.Location, error) {
	locs := make([]*time.Location, len(names))
	for i, n := range names {
		loc, err := LoadZone(n)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNoTimeZone, err)
		}
		locs[i] = loc
	}
	return locs, nil
}

// CalleeZones are the zones the law's hours are checked in for a call to
// number: the named zone when there is one (it must be a zone of the
// number's country, so it cannot move a call out of the country's night),
// else every zone the number may ring in.
func CalleeZones(number, zone string) ([]*time.Location, error) {
	if zone == "" {
		return NumberZones(number)
	}
	if err := phone.CheckZone(number, zone); err != nil {
		return nil, fmt.Errorf("%w: time_zone: %w", ErrNoTimeZone, err)
	}
	return loadZones([]string{zone})
}

// LegalWindow is when a call to number may be placed by law alone (an
// inline call): LegalHours in each of CalleeZones(number, zone).
func LegalWindow(number, zone string) (Window, error) {
	locs, err := CalleeZones(number, zone)
	if err != nil {
		return Window{}, err
	}
	return Window{rules: legalRules(locs)}, nil
}

func legalRules(locs []*time.Location) []zoneHours {
	rules := make([]zoneHours, len(locs))
	for i, loc := range locs {
		rules[i] = zoneHours{hours: LegalHours, loc: loc}
	}
	return rules
}

// ContactWindow is when a campaign may call a contact. Two sets of hours
// combine, and an instant must be inside both:
//
//   - the campaign's calling hours and days in the contact's zone (its
//     time_zone, else the campaign's default): where the campaign believes
//     the callee is, which is what its hours mean;
//   - LegalHours in every zone the number may ring in: where the phone may
//     actually be. A contact whose time_zone is not a zone of its number's
//     country (a mistake, or a person who moved) is thus never called at
//     night where the phone rings.
//
// Both are inside [Start, End) of the campaign's window.
func (c Calendar) ContactWindow(contactZone, number string) (Window, error) {
	loc, err := c.Zone(contactZone)
	if err != nil {
		return Window{}, fmt.Errorf("%w: contact's time_zone: %w", ErrNoTimeZone, err)
	}
	locs, err := NumberZones(number)
	if err != nil {
		return Window{}, err
	}
	w := c.window(loc)
	w.rules = append(w.rules, legalRules(locs)...)
	return w, nil
}

// window is the campaign's hours in loc alone, inside its window.
func (c Calendar) window(loc *time.Location) Window {
	return Window{rules: []zoneHours{{hours: c.Hours, loc: loc}}, start: c.Start, end: c.End}
}

// unbounded is the window without the campaign's start and end: whether
// the callee's hours ever open at all.
func (w Window) unbounded() Window { return Window{rules: w.rules} }

// Window is when one callee may be called: a set of calling hours, each in
// its own zone, and optionally bounds in absolute time. An instant is
// inside the window only when it is inside every one of them, which is the
// strictest reading of "every zone must be inside the hours".
type Window struct {
	rules      []zoneHours
	start, end time.Time // zero: unbounded
}

type zoneHours struct {
	hours Hours
	loc   *time.Location
}

// Open reports whether t is inside the window.
func (w Window) Open(t time.Time) bool { return w.Closed(t) == "" }

// Closed says why t is outside the window ("" when it is inside), for the
// call document and the logs: "it is Sun 00:29 JST in Asia/Tokyo".
func (w Window) Closed(t time.Time) string {
	if !w.start.IsZero() && t.Before(w.start) {
		return "the campaign's window opens at " + w.start.UTC().Format(time.RFC3339)
	}
	if !w.end.IsZero() && !t.Before(w.end) {
		return "the campaign's window closed at " + w.end.UTC().Format(time.RFC3339)
	}
	var closed []string
	for _, r := range w.rules {
		if !r.hours.Open(t, r.loc) {
			closed = append(closed, fmt.Sprintf("it is %s in %s", t.In(r.loc).Format("Mon 15:04 MST"), r.loc))
		}
	}
	return strings.Join(closed, ", ")
}

// nextOpenHorizon bounds the search for an opening: two weeks cover every
// weekly calendar twice. Zones whose hours never meet within it (a number
// spanning more than 13 hours of offsets) are treated as never meeting.
const nextOpenHorizon = 14 * 24 * time.Hour

// NextOpen returns the first instant at or after t inside the window, and
// false when there is none within two weeks of where the search starts (or
// before the window's end). Each set of hours is exact across DST changes
// (Hours.NextOpen); their intersection is found by moving to the next
// opening of whichever set is closed until all are open, which never passes
// over a common opening because no set opens earlier than its own
// NextOpen.
func (w Window) NextOpen(t time.Time) (time.Time, bool) {
	u := t
	if u.Before(w.start) {
		u = w.start
	}
	limit := u.Add(nextOpenHorizon)
	for u.Before(limit) {
		if !w.end.IsZero() && !u.Before(w.end) {
			return time.Time{}, false
		}
		moved := false
		for _, r := range w.rules {
			next, ok := r.hours.NextOpen(u, r.loc)
			if !ok {
				return time.Time{}, false
			}
			if next.After(u) {
				u, moved = next, true
			}
		}
		if !moved {
			return u, true
		}
	}
	return time.Time{}, false
}

// NextOpenFor is like NextOpen, but the window must also be open hold
// later, so a call that takes hold to set up is not cut off by the window
// closing before it dials. hold must be shorter than the gap between two
// openings (hours), as every real one is.
func (w Window) NextOpenFor(t time.Time, hold time.Duration) (time.Time, bool) {
	u := t
	for range 2 * int(nextOpenHorizon/(24*time.Hour)) {
		var ok bool
		if u, ok = w.NextOpen(u); !ok {
			return time.Time{}, false
		}
		if w.Open(u.Add(hold)) {
			return u, true
		}
		// Open at u but not hold later: this opening is too short (or ends
		// too soon); the next one starts after u+hold.
		u = u.Add(hold)
	}
	return time.Time{}, false
}
