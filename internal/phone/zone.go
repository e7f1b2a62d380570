package phone

import (
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	// Zones are loaded from Go's embedded copy of the tz database: whether
	// a number may be called must not depend on what the image contains.
	_ "time/tzdata"

	"github.com/nyaruka/phonenumbers"
)

// ErrNoZone means no time zone is known for a number: its region is
// unknown (an unassigned or non-geographic range, such as +1 555 or
// +882), or libphonenumber maps it to "Etc/Unknown". Such a number can never
// be called inside calling hours, because nobody can say what time it is
// where it rings.
var ErrNoZone = errors.New("no time zone is known for this number")

// ErrZoneNotInCountry means a time zone was named for a number that is not
// a zone of the number's country.
var ErrZoneNotInCountry = errors.New("not a time zone of the number's country")

// unknownZone is libphonenumber's answer when its prefix data has no zone.
const unknownZone = phonenumbers.UNKNOWN_TIMEZONE

// parse reads an E.164 number with libphonenumber.
func parse(number string) (*phonenumbers.PhoneNumber, error) {
	if !Valid(number) {
		return nil, ErrNotE164
	}
	n, err := phonenumbers.Parse(number, "")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotE164, err)
	}
	return n, nil
}

// Region is the ISO 3166 country of a number ("US", "JP"), or "" when
// libphonenumber cannot place it in one (an unassigned range, a
// non-geographic service).
func Region(number string) string {
	n, err := parse(number)
	if err != nil {
		return ""
	}
	switch r := phonenumbers.GetRegionCodeForNumber(n); r {
	case "", phonenumbers.UNKNOWN_REGION, "001": // 001: non-geographic entity
		return ""
	default:
		return r
	}
}

// Zones returns the IANA time zones a number may ring in, from
// libphonenumber's prefix data (sorted, at least one). Most numbers have
// one; a number whose prefix does not pin it down (a mobile or toll-free
// number of a country spanning several zones, a US area code split by a
// zone line) has several, and the person called may be in any of them.
// The error is ErrNoZone when the region or every zone is unknown, and
// ErrNotE164 for a number that is not E.164.
func Zones(number string) ([]string, error) {
	n, err := parse(number)
	if err != nil {
		return nil, err
	}
	if Region(number) == "" {
		return nil, fmt.Errorf("%w: its country is unknown", ErrNoZone)
	}
	found, err := phonenumbers.GetTimezonesForNumber(n)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoZone, err)
	}
	zones := make([]string, 0, len(found))
	for _, z := range found {
		if z == unknownZone || z == "" {
			continue
		}
		// A zone the tz database does not know cannot be evaluated, and
		// leaving it out would widen the hours: refuse the number instead.
		if _, err := time.LoadLocation(z); err != nil {
			return nil, fmt.Errorf("%w: zone %q is not in the tz database", ErrNoZone, z)
		}
		zones = append(zones, z)
	}
	if len(zones) == 0 {
		return nil, ErrNoZone
	}
	slices.Sort(zones)
	return slices.Compact(zones), nil
}

// zoneTab is the tz database's zone.tab (tzdata 2025b, public domain):
// the zones of each country. Refresh it with Go's own tzdata.
//
//go:embed zone.tab
var zoneTab string

// countryZones maps an ISO 3166 country to its zones in zone.tab.
var countryZones = sync.OnceValue(func() map[string][]string {
	m := map[string][]string{}
	for line := range strings.Lines(zoneTab) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(strings.TrimRight(line, "\r\n"), "\t")
		if len(f) >= 3 {
			m[f[0]] = append(m[f[0]], f[2])
		}
	}
	return m
})

// CountryZones returns the time zones of a number's country: the tz
// database's zones for its region, plus the zones libphonenumber gives the
// number itself (its data and the tz database's country table do not
// always agree). ErrNoZone when the country is unknown.
func CountryZones(number string) ([]string, error) {
	region := Region(number)
	if region == "" {
		if _, err := parse(number); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: its country is unknown", ErrNoZone)
	}
	zones := slices.Clone(countryZones()[region])
	if own, err := Zones(number); err == nil {
		zones = append(zones, own...)
	}
	if len(zones) == 0 {
		return nil, ErrNoZone
	}
	slices.Sort(zones)
	return slices.Compact(zones), nil
}

// CheckZone reports whether zone is an IANA time zone of the number's
// country (CountryZones), so a producer may name the one zone of a number
// that spans several. The error does not quote the number.
func CheckZone(number, zone string) error {
	zones, err := CountryZones(number)
	if err != nil {
		return err
	}
	if !slices.Contains(zones, zone) {
		return fmt.Errorf("%q is %w (%s): use one of %s", zone, ErrZoneNotInCountry, Region(number), listZones(zones))
	}
	return nil
}

// listZones shortens a long list for an error message.
func listZones(zones []string) string {
	const most = 8
	if len(zones) <= most {
		return strings.Join(zones, ", ")
	}
	return strings.Join(zones[:most], ", ") + fmt.Sprintf(" … (%d in all)", len(zones))
}
