package logging

import (
	"sync"
	"time"
)

// Throttle lets the first line of each key through, then at most one per
// interval; the next line let through says how many were held back since
// the last one (Allow's suppressed). A library that logs on every failed
// dial during an outage (go-redis wrote 65 lines in 40 s) then costs a few
// lines, and the counts say how bad it was. Safe for concurrent use.
type Throttle struct {
	every time.Duration      // immutable
	now   func() time.Time   // immutable
	mu    sync.Mutex         // guards keys
	keys  map[string]*window // bounded by maxThrottleKeys
}

type window struct {
	last time.Time // when a line was last let through
	held int       // lines held back since
}

// maxThrottleKeys bounds the memory of a throttle whose keys carry ids.
const maxThrottleKeys = 512

// NewThrottle lets one line per key through every interval (now is
// time.Now when nil).
func NewThrottle(every time.Duration, now func() time.Time) *Throttle {
	if now == nil {
		now = time.Now
	}
	return &Throttle{every: every, now: now, keys: map[string]*window{}}
}

// Allow reports whether a line for key may be written now and, when it
// may, how many lines of that key were held back since the last one.
func (t *Throttle) Allow(key string) (ok bool, suppressed int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	w := t.keys[key]
	if w == nil {
		if len(t.keys) >= maxThrottleKeys {
			t.forgetQuiet(now)
		}
		if len(t.keys) >= maxThrottleKeys {
			return true, 0 // too many distinct keys to track: let it through
		}
		t.keys[key] = &window{last: now}
		return true, 0
	}
	if now.Sub(w.last) < t.every {
		w.held++
		return false, 0
	}
	suppressed, w.held, w.last = w.held, 0, now
	return true, suppressed
}

// forgetQuiet drops keys that held nothing back and were last let through
// an interval ago or more: their next line would pass anyway.
func (t *Throttle) forgetQuiet(now time.Time) {
	for k, w := range t.keys {
		if w.held == 0 && now.Sub(w.last) >= t.every {
			delete(t.keys, k)
		}
	}
}
