package telephony

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/twitchtv/twirp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Outcome is how a dial attempt ended.
type Outcome string

const (
	Answered Outcome = "answered"
	Busy     Outcome = "busy"
	NoAnswer Outcome = "no_answer"
	Rejected Outcome = "rejected"
	Failed   Outcome = "failed"
)

// Sentinel errors, one per unanswered outcome: a Dial error matches exactly
// one of them with errors.Is.
var (
	ErrBusy       = errors.New("telephony: callee is busy")
	ErrNoAnswer   = errors.New("telephony: no answer")
	ErrRejected   = errors.New("telephony: call rejected")
	ErrDialFailed = errors.New("telephony: dial failed")
)

func (o Outcome) sentinel() error {
	switch o {
	case Busy:
		return ErrBusy
	case NoAnswer:
		return ErrNoAnswer
	case Rejected:
		return ErrRejected
	case Failed:
		return ErrDialFailed
	}
	return nil
}

// DialError is the error of a dial that was not answered. It matches its
// outcome's sentinel (errors.Is(err, ErrBusy)) and unwraps to the cause, so
// errors.Is(err, context.Canceled) tells a dial we abandoned from one the
// network refused.
type DialError struct {
	Outcome   Outcome
	SIPCode   int    // final SIP response code, 0 when none was reported
	SIPStatus string // its reason phrase, if any
	Err       error  // what LiveKit (or the simulator) returned
}

func (e *DialError) Error() string {
	msg := fmt.Sprintf("telephony: dial %s", e.Outcome)
	if e.SIPCode != 0 {
		msg += fmt.Sprintf(" (SIP %d", e.SIPCode)
		if e.SIPStatus != "" {
			msg += " " + e.SIPStatus
		}
		msg += ")"
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *DialError) Unwrap() error { return e.Err }

func (e *DialError) Is(target error) bool { return target != nil && target == e.Outcome.sentinel() }

// OutcomeOf returns the outcome a Dial error stands for: Answered for nil,
// Failed for an error that is not a DialError.
func OutcomeOf(err error) Outcome {
	if err == nil {
		return Answered
	}
	if de, ok := errors.AsType[*DialError](err); ok {
		return de.Outcome
	}
	return Failed
}

// OutcomeForSIPCode maps a final SIP response code to an outcome.
func OutcomeForSIPCode(code int) Outcome {
	switch code {
	case 200:
		return Answered
	case 486, 600: // Busy Here, Busy Everywhere
		return Busy
	case 408, 480, 487: // Request Timeout (LiveKit's ring timeout), Temporarily Unavailable, Request Terminated (CANCEL while ringing)
		return NoAnswer
	case 403, 603, 607, 608: // Forbidden, Decline, Unwanted, Rejected
		return Rejected
	}
	return Failed
}

// ClassifyDialError turns the error of CreateSIPParticipant into a
// DialError. LiveKit reports the callee's final SIP response as a SIPStatus
// in the error details (and as twirp meta sip_status_code / sip_status).
// Older SIP services report the end of the ring window with no SIP status,
// only a canceled / deadline code: that counts as no answer when the ring
// window has passed, and as a failure when it has not.
func ClassifyDialError(ctx context.Context, err error, elapsed, ringTimeout time.Duration) *DialError {
	if ctxErr := ctx.Err(); ctxErr != nil {
		// We gave up (shutdown, task deadline); the network said nothing.
		return &DialError{Outcome: Failed, Err: fmt.Errorf("%w (%w)", ctxErr, err)}
	}
	code, reason := sipStatusOf(err)
	if code != 0 {
		return &DialError{Outcome: OutcomeForSIPCode(code), SIPCode: code, SIPStatus: reason, Err: err}
	}
	if isTimeoutCode(err) && elapsed >= ringTimeout-ringTimeoutSlack {
		return &DialError{Outcome: NoAnswer, Err: err}
	}
	return &DialError{Outcome: Failed, Err: err}
}

// ringTimeoutSlack allows for the server's ring timer starting before ours
// ends, so an on-time "canceled" is not mistaken for an early failure.
const ringTimeoutSlack = 500 * time.Millisecond

// sipStatusOf finds the SIP status in an error from the LiveKit API: in the
// decoded gRPC details (what the SDK's client interceptor produces), or in
// twirp meta when a server sent no details.
func sipStatusOf(err error) (int, string) {
	if st := livekit.SIPStatusFrom(err); st != nil && st.Code != 0 {
		return int(st.Code), sipReason(st)
	}
	if te, ok := errors.AsType[twirp.Error](err); ok {
		if n, convErr := strconv.Atoi(te.Meta("sip_status_code")); convErr == nil && n > 0 {
			return n, te.Meta("sip_status")
		}
	}
	return 0, ""
}

func sipReason(st *livekit.SIPStatus) string {
	if st.Status != "" {
		return st.Status
	}
	return st.Code.ShortName()
}

func isTimeoutCode(err error) bool {
	if te, ok := errors.AsType[twirp.Error](err); ok {
		return te.Code() == twirp.Canceled || te.Code() == twirp.DeadlineExceeded
	}
	if st, ok := status.FromError(err); ok {
		return st.Code() == codes.Canceled || st.Code() == codes.DeadlineExceeded
	}
	return false
}
