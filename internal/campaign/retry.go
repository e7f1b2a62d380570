package campaign

import (
	"errors"
	"fmt"
	"time"

	"github.com/docshield/voice-worker/internal/store"
)

// Outcome is how an attempt ended, as the retry policy sees it: a terminal
// call status, or opted_out when the callee asked not to be called again.
type Outcome string

const (
	OutcomeCompleted   Outcome = Outcome(store.CallCompleted)
	OutcomeNoAnswer    Outcome = Outcome(store.CallNoAnswer)
	OutcomeBusy        Outcome = Outcome(store.CallBusy)
	OutcomeVoicemail   Outcome = Outcome(store.CallVoicemail)
	OutcomeFailed      Outcome = Outcome(store.CallFailed)
	OutcomeInterrupted Outcome = Outcome(store.CallInterrupted)
	// OutcomeCancelled is an attempt ended before it was dialed (the
	// pre-dial check refused it, or the campaign was stopped). It does
	// not count against the attempt limit.
	OutcomeCancelled Outcome = Outcome(store.CallCancelled)
	OutcomeOptedOut  Outcome = "opted_out"
	// OutcomeMediaLost is a failed call whose media was gone (LiveKit
	// unreachable, no audio from the line): our failure, not the callee's,
	// so it is retried whatever retry_outcomes says, within max_attempts.
	OutcomeMediaLost Outcome = "media_lost"
	// OutcomeTransferred is a call handed to a human: completed.
	OutcomeTransferred Outcome = "transferred"
)

// ParseOutcome checks that s is one of the outcomes above.
func ParseOutcome(s string) (Outcome, error) {
	switch o := Outcome(s); o {
	case OutcomeCompleted, OutcomeNoAnswer, OutcomeBusy, OutcomeVoicemail, OutcomeFailed,
		OutcomeInterrupted, OutcomeCancelled, OutcomeOptedOut, OutcomeMediaLost, OutcomeTransferred:
		return o, nil
	}
	return "", fmt.Errorf("outcome %q is not one of completed, no_answer, busy, voicemail, failed, interrupted, cancelled, opted_out, media_lost, transferred", s)
}

// OutcomeOf is an ended attempt's outcome, the one rule every path that
// moves a contact on uses (the call flow's analysis, the dispatcher's
// repair round): the call flow's own outcome when the policy knows it
// (opted_out, media_lost, transferred), else the terminal status.
func OutcomeOf(a *store.Call) Outcome {
	if o, err := ParseOutcome(a.Outcome); err == nil {
		return o
	}
	return Outcome(a.Status)
}

// retryable are the outcomes a campaign may choose to retry. Completed and
// opted-out contacts are final whatever the settings say.
var retryable = map[Outcome]bool{
	OutcomeNoAnswer: true, OutcomeBusy: true, OutcomeFailed: true, OutcomeVoicemail: true, OutcomeInterrupted: true,
}

// Retry policy defaults for a campaign that leaves them unset.
var (
	DefaultMaxAttempts   = 3
	DefaultRetryOutcomes = []Outcome{OutcomeNoAnswer, OutcomeBusy, OutcomeFailed}
	DefaultBackoff       = []time.Duration{30 * time.Minute, 2 * time.Hour, 24 * time.Hour}
)

// Limits on retry settings, so a typo cannot make a campaign call someone
// fifty times or every minute.
const (
	MaxMaxAttempts = 20
	MinBackoff     = time.Minute
	MaxBackoff     = 30 * 24 * time.Hour
)

// Policy decides whether and when a contact is called again.
type Policy struct {
	// MaxAttempts limits dialed attempts per contact.
	MaxAttempts int
	retry       map[Outcome]bool
	// Backoff[i] is the wait after the (i+1)th dialed attempt; the last
	// entry repeats.
	Backoff []time.Duration
}

// PolicyFrom validates a campaign's retry settings, filling defaults.
func PolicyFrom(r store.RetryPolicy) (Policy, error) {
	p := Policy{MaxAttempts: r.MaxAttempts, retry: map[Outcome]bool{}}
	var errs []error
	switch {
	case r.MaxAttempts == 0:
		p.MaxAttempts = DefaultMaxAttempts
	case r.MaxAttempts < 0 || r.MaxAttempts > MaxMaxAttempts:
		errs = append(errs, fmt.Errorf("retry.max_attempts: %d is not between 1 and %d", r.MaxAttempts, MaxMaxAttempts))
	}
	outcomes := DefaultRetryOutcomes
	if len(r.RetryOutcomes) > 0 {
		outcomes = nil
		for _, s := range r.RetryOutcomes {
			if !retryable[Outcome(s)] {
				errs = append(errs, fmt.Errorf("retry.retry_outcomes: %q cannot be retried (use no_answer, busy, failed, voicemail or interrupted)", s))
				continue
			}
			outcomes = append(outcomes, Outcome(s))
		}
	}
	for _, o := range outcomes {
		p.retry[o] = true
	}
	p.Backoff = DefaultBackoff
	if len(r.BackoffSeconds) > 0 {
		p.Backoff = make([]time.Duration, len(r.BackoffSeconds))
		for i, s := range r.BackoffSeconds {
			d := time.Duration(s) * time.Second
			if d < MinBackoff || d > MaxBackoff {
				errs = append(errs, fmt.Errorf("retry.backoff_seconds[%d]: %d is not between %d and %d", i, s,
					int(MinBackoff/time.Second), int(MaxBackoff/time.Second)))
			}
			p.Backoff[i] = d
		}
	}
	return p, errors.Join(errs...)
}

// Retries reports whether the policy calls again after outcome o.
func (p Policy) Retries(o Outcome) bool { return p.retry[o] }

// Decision is a contact's state after an attempt.
type Decision struct {
	Status store.ContactStatus
	// NextAttemptAt is when the contact is due again; zero when Status is
	// final.
	NextAttemptAt time.Time
	// Reason says in words why, for logs.
	Reason string
}

// Final reports whether the contact will not be called again.
func (d Decision) Final() bool { return d.Status != store.ContactPending }

// Attempt is what the policy needs to know about an attempt that ended.
type Attempt struct {
	Outcome Outcome
	// Dialed counts the contact's attempts that went to the phone network,
	// this one included unless it was cancelled before dialing.
	Dialed int
	// EndedAt is when the attempt ended; backoff counts from it.
	EndedAt time.Time
	// CallbackAt is a time the callee asked to be called back; zero if
	// none. It replaces the backoff.
	CallbackAt time.Time
}

// Decide applies the policy. A retry is never scheduled outside the
// contact's calling window w (Calendar.ContactWindow), and when the
// campaign's window closes before it opens again, the contact is exhausted.
func (p Policy) Decide(a Attempt, w Window) Decision {
	left := a.Dialed < p.MaxAttempts
	switch {
	case a.Outcome == OutcomeOptedOut:
		return Decision{Status: store.ContactDoNotCall, Reason: "asked not to be called"}
	case a.Outcome == OutcomeCancelled:
		if !left {
			return exhausted(p)
		}
		return p.retryAt(a.EndedAt, "not dialed; due again at the next calling window", w)
	case !a.CallbackAt.IsZero():
		if !left {
			return exhausted(p)
		}
		at := a.CallbackAt
		if at.Before(a.EndedAt) {
			at = a.EndedAt
		}
		return p.retryAt(at, "callback requested", w)
	case a.Outcome == OutcomeCompleted || a.Outcome == OutcomeTransferred:
		return Decision{Status: store.ContactCompleted, Reason: "call " + string(a.Outcome)}
	case a.Outcome == OutcomeMediaLost:
		if !left {
			return exhausted(p)
		}
		// Ours to put right: no backoff beyond the first step.
		return p.retryAt(a.EndedAt.Add(p.Backoff[0]), "media lost on our side; called again", w)
	case !p.retry[a.Outcome]:
		return Decision{Status: store.ContactExhausted, Reason: fmt.Sprintf("outcome %s is not retried", a.Outcome)}
	case !left:
		return exhausted(p)
	}
	wait := p.Backoff[min(max(a.Dialed, 1), len(p.Backoff))-1]
	return p.retryAt(a.EndedAt.Add(wait), fmt.Sprintf("%s; retry after %s", a.Outcome, wait), w)
}

func (p Policy) retryAt(at time.Time, reason string, w Window) Decision {
	next, ok := w.NextOpen(at)
	if !ok {
		return Decision{Status: store.ContactExhausted, Reason: "the campaign's window closes before the next calling hours"}
	}
	return Decision{Status: store.ContactPending, NextAttemptAt: next, Reason: reason}
}

func exhausted(p Policy) Decision {
	return Decision{Status: store.ContactExhausted, Reason: fmt.Sprintf("all %d attempts used", p.MaxAttempts)}
}

// AttemptsUsed is how many of a contact's attempts count against the
// campaign's max_attempts: the larger of what its counter says and what its
// attempt documents say. Each attempt number up to the counter (the
// contact's attempts field, which a backend may write with attempts made
// elsewhere) counts unless its document proves it was never dialed, and
// every attempt document that went to the phone network counts. So a
// contact written with attempts: 3 and no documents has used 3, and an
// attempt cancelled before dialing never counts.
func AttemptsUsed(counter int, marks []store.AttemptMark) int {
	used := 0
	seen := make(map[int]bool, len(marks))
	for _, m := range marks {
		seen[m.Attempt] = true
		if m.Dialed {
			used++
		}
	}
	for n := 1; n <= counter; n++ {
		if !seen[n] {
			used++
		}
	}
	return used
}
