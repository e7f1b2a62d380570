package telephony

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/docshield/voice-worker/internal/phone"
)

// Defaults for the optional settings of Config.
const (
	DefaultRingTimeout      = 30 * time.Second
	DefaultEmptyTimeout     = 30 * time.Second
	DefaultDepartureTimeout = 5 * time.Second
	DefaultSampleRate       = 24000 // OpenAI Realtime's PCM rate: no resampling between the two
	DefaultMaxParticipants  = 3     // agent, callee and a transfer target
)

// Config is what telephony needs from the worker's configuration.
type Config struct {
	URL       string // LIVEKIT_URL, ws(s):// or http(s)://
	APIKey    string // LIVEKIT_API_KEY
	APISecret string // LIVEKIT_API_SECRET

	SIPTrunkID string // outbound trunk; required by the SIP dialer only
	CallerID   string // E.164 number presented to the callee; empty: the trunk's number
	CallerName string // display name in the From header; empty: the number is shown

	RingTimeout time.Duration // how long the phone may ring; 0: DefaultRingTimeout
	// MaxCallDuration is LiveKit's own limit on the SIP leg, a backstop for a
	// worker that dies mid-call and can no longer hang up; 0: LiveKit's default.
	MaxCallDuration time.Duration

	// EmptyTimeout closes a room nobody joined; DepartureTimeout closes it
	// after the last participant left. Both reclaim rooms of crashed workers.
	EmptyTimeout     time.Duration
	DepartureTimeout time.Duration
	MaxParticipants  int

	SampleRate int // PCM rate of the agent's audio in and out; 0: DefaultSampleRate
}

// Validate checks the settings every part of the package needs. The SIP
// trunk is checked by NewSIPDialer, since the simulator does not need one.
func (c Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.URL); c.URL == "" || err != nil || u.Host == "" ||
		(u.Scheme != "ws" && u.Scheme != "wss" && u.Scheme != "http" && u.Scheme != "https") {
		errs = append(errs, errors.New("telephony: URL must be a ws(s):// or http(s):// address"))
	}
	if c.APIKey == "" {
		errs = append(errs, errors.New("telephony: APIKey is required"))
	}
	if c.APISecret == "" {
		errs = append(errs, errors.New("telephony: APISecret is required"))
	}
	if c.CallerID != "" && !phone.Valid(c.CallerID) {
		errs = append(errs, errors.New("telephony: CallerID must be an E.164 number like +15551234567"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"RingTimeout", c.RingTimeout}, {"MaxCallDuration", c.MaxCallDuration}, {"EmptyTimeout", c.EmptyTimeout}, {"DepartureTimeout", c.DepartureTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("telephony: %s must not be negative", d.name))
		}
	}
	if c.MaxParticipants < 0 || c.MaxParticipants == 1 {
		errs = append(errs, errors.New("telephony: MaxParticipants must be 0 (default) or at least 2"))
	}
	switch c.SampleRate {
	case 0, 8000, 12000, 16000, 24000, 48000: // the rates Opus encodes natively
	default:
		errs = append(errs, fmt.Errorf("telephony: SampleRate %d is not one of 8000, 12000, 16000, 24000, 48000", c.SampleRate))
	}
	return errors.Join(errs...)
}

func (c Config) ringTimeout() time.Duration  { return orDefault(c.RingTimeout, DefaultRingTimeout) }
func (c Config) emptyTimeout() time.Duration { return orDefault(c.EmptyTimeout, DefaultEmptyTimeout) }
func (c Config) departTimeout() time.Duration {
	return orDefault(c.DepartureTimeout, DefaultDepartureTimeout)
}
func (c Config) sampleRate() int      { return orDefault(c.SampleRate, DefaultSampleRate) }
func (c Config) maxParticipants() int { return orDefault(c.MaxParticipants, DefaultMaxParticipants) }

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
