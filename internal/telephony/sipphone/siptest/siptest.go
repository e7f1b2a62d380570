// Package siptest puts a SIP phone (package sipphone) at the end of a
// trunk of its own in the local stack, for tests that place calls through
// LiveKit's SIP service: each test gets its own phone on a free loopback
// port and its own trunk to it, so tests and packages running in parallel
// never share either.
package siptest

import (
	"testing"

	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/docshield/voice-worker/internal/telephony/sipphone"
	"github.com/docshield/voice-worker/internal/testenv"
)

// Line is a phone and the outbound trunk that dials it.
type Line struct {
	Phone *sipphone.Phone
	Trunk testenv.Trunk
}

// Start starts a phone configured by cfg on a free port of 127.0.0.1 (its
// Addr and Auth are set here), challenging for a fresh trunk's digest
// credentials as a carrier does, and provisions that trunk through
// LiveKit's SIP API. The phone is closed, and the trunk deleted, when the
// test ends. It skips (fails under make test) outside the stack.
func Start(t testing.TB, cfg sipphone.Config) Line {
	t.Helper()
	testenv.LiveKit(t) // skip before starting anything outside the stack
	auth := testenv.NewTrunkAuth(t)
	cfg.Addr = "127.0.0.1:0"
	cfg.Auth = &sipphone.Auth{Username: auth.Username, Password: auth.Password}
	p, err := sipphone.Start(cfg)
	if err != nil {
		t.Fatalf("siptest: start the phone: %v", err)
	}
	t.Cleanup(p.Close)
	return Line{Phone: p, Trunk: testenv.NewOutboundTrunkWithAuth(t, p.Addr().String(), auth)}
}

// Telephony is the stack's LiveKit settings with this line's trunk, as
// the worker's LIVEKIT_* and LIVEKIT_SIP_TRUNK_ID would give them.
func (l Line) Telephony(t testing.TB) telephony.Config {
	t.Helper()
	lk := testenv.LiveKit(t)
	return telephony.Config{URL: lk.URL, APIKey: lk.APIKey, APISecret: lk.APISecret, SIPTrunkID: l.Trunk.ID}
}
