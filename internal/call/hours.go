package call

import (
	"time"

	"github.com/docshield/voice-worker/internal/campaign"
)

// legalHoursRefusal is the check no dial can skip, made right before the
// phone rings whatever path led there (a dispatcher, a handler with a
// moved clock, a task that sat in a backed-up queue): the law's calling
// hours, 08:00–21:00 in the callee's local time, in the inline call's
// time_zone or else in every zone the number may ring in. It is judged by
// the wall clock, never an injected one, and a number whose local time
// cannot be known is refused. It returns "" when the call may be dialed.
func legalHoursRefusal(number, zone string, now time.Time) string {
	w, err := campaign.LegalWindow(number, zone)
	if err != nil {
		return err.Error()
	}
	if why := w.Closed(now); why != "" {
		return "outside calling hours (08:00–21:00 where the callee is): " + why
	}
	return ""
}
