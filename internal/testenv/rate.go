package testenv

import (
	"slices"
	"time"
)

// MaxExcess is the most any window of the sorted event times holds beyond
// what perSecond allows in it: max over i ≤ j of (j-i+1) - rate·(t_j - t_i).
// A token bucket with burst b keeps it at most b, so "within one token" of
// the rate is b + 1. It sorts ts.
func MaxExcess(ts []time.Time, perSecond float64) float64 {
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	worst := 0.0
	for i := range ts {
		for j := i; j < len(ts); j++ {
			worst = max(worst, float64(j-i+1)-perSecond*ts[j].Sub(ts[i]).Seconds())
		}
	}
	return worst
}
