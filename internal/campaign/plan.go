package campaign

import (
	"errors"
	"fmt"

	"github.com/docshield/voice-worker/internal/store"
)

// Concurrency limit bounds: a campaign that sets none gets the default.
const (
	DefaultConcurrencyLimit = 5
	MaxConcurrencyLimit     = 10000
)

// plan is a campaign document read and validated: everything dispatch and
// the retry policy need, with defaults filled.
type plan struct {
	c      *store.Campaign
	cal    Calendar
	policy Policy
	limit  int
}

// planFor validates a campaign's settings. The error lists every problem,
// each naming its field in the campaign document.
func planFor(c *store.Campaign) (plan, error) {
	p := plan{c: c, limit: c.ConcurrencyLimit}
	var errs []error
	hours, err := ParseHours(c.Schedule.CallingHoursStart, c.Schedule.CallingHoursEnd, c.Schedule.CallingDays)
	if err != nil {
		errs = append(errs, err)
	}
	p.cal = Calendar{Hours: hours, Start: c.Schedule.WindowStart, End: c.Schedule.WindowEnd}
	if !p.cal.Start.IsZero() && !p.cal.End.IsZero() && !p.cal.Start.Before(p.cal.End) {
		errs = append(errs, errors.New("schedule.window_start: is not before schedule.window_end"))
	}
	// Required even when every contact has its own zone: a contact added
	// later without one must still have calling hours.
	if p.cal.DefaultZone, err = LoadZone(c.Schedule.DefaultTimeZone); err != nil {
		errs = append(errs, fmt.Errorf("schedule.default_time_zone: %w", err))
	}
	if p.policy, err = PolicyFrom(c.Retry); err != nil {
		errs = append(errs, err)
	}
	switch {
	case c.ConcurrencyLimit == 0:
		p.limit = DefaultConcurrencyLimit
	case c.ConcurrencyLimit < 0 || c.ConcurrencyLimit > MaxConcurrencyLimit:
		errs = append(errs, fmt.Errorf("concurrency_limit: %d is not between 1 and %d", c.ConcurrencyLimit, MaxConcurrencyLimit))
	}
	if err := errors.Join(errs...); err != nil {
		return plan{}, fmt.Errorf("campaign %s has invalid settings: %w", c.ID.Hex(), err)
	}
	return p, nil
}

// ValidateCampaign reports every problem with a campaign's settings, as the
// dispatcher would find them, so a backend or an operator can check a
// campaign before scheduling it.
func ValidateCampaign(c *store.Campaign) error {
	_, err := planFor(c)
	return err
}
