package store

import "time"

// SetClock replaces the store's clock (time.Now), which stamps attempt
// transitions and leases. Tests that move time call it before using the
// Store; it must not be called while the Store is in use.
func (s *Store) SetClock(now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	s.now = now
}
