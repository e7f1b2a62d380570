package telephony

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/stretchr/testify/require"
	"github.com/twitchtv/twirp"
)

func TestOutcomeForSIPCode(t *testing.T) {
	for code, want := range map[int]Outcome{
		200: Answered,
		486: Busy, 600: Busy,
		408: NoAnswer, 480: NoAnswer, 487: NoAnswer,
		403: Rejected, 603: Rejected, 607: Rejected, 608: Rejected,
		404: Failed, 484: Failed, 500: Failed, 503: Failed, 604: Failed,
	} {
		require.Equal(t, want, OutcomeForSIPCode(code), "SIP %d", code)
	}
}

// The error shapes below are the ones LiveKit produces: the SIP service
// wraps a SIPStatus; the server turns it into a twirp error carrying meta
// sip_status_code / sip_status and the status details; the SDK's client
// interceptor turns the details back into a gRPC status error.
func TestClassifyDialErrorReadsTheSIPStatus(t *testing.T) {
	ctx := context.Background()
	const ring = 30 * time.Second
	sipStatus := func(code livekit.SIPStatusCode, reason string) *livekit.SIPStatus {
		return &livekit.SIPStatus{Code: code, Status: reason}
	}
	cases := []struct {
		name     string
		err      error
		outcome  Outcome
		sentinel error
		code     int
	}{
		{"grpc status with details (what the Go SDK returns)", sipStatus(486, "Busy Here").GRPCStatus().Err(), Busy, ErrBusy, 486},
		{"wrapped SIPStatus", fmt.Errorf("INVITE failed: %w", sipStatus(603, "Decline")), Rejected, ErrRejected, 603},
		{"twirp meta only", twirp.NewError(twirp.FailedPrecondition, "INVITE failed").WithMeta("sip_status_code", "600").WithMeta("sip_status", "Busy Everywhere"), Busy, ErrBusy, 600},
		{"ring timeout as 408", sipStatus(408, "Request Timeout").GRPCStatus().Err(), NoAnswer, ErrNoAnswer, 408},
		{"temporarily unavailable", twirp.NewError(twirp.InvalidArgument, "x").WithMeta("sip_status_code", "480"), NoAnswer, ErrNoAnswer, 480},
		{"forbidden", sipStatus(403, "").GRPCStatus().Err(), Rejected, ErrRejected, 403},
		{"number does not exist", sipStatus(404, "Not Found").GRPCStatus().Err(), Failed, ErrDialFailed, 404},
		{"trunk error", twirp.NewError(twirp.NotFound, "requested sip trunk does not exist"), Failed, ErrDialFailed, 0},
		{"no SIP service", twirp.InternalError("sip not connected (redis required)"), Failed, ErrDialFailed, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			de := ClassifyDialError(ctx, tc.err, time.Second, ring)
			require.Equal(t, tc.outcome, de.Outcome)
			require.Equal(t, tc.code, de.SIPCode)
			require.ErrorIs(t, de, tc.sentinel)
			for _, other := range []error{ErrBusy, ErrNoAnswer, ErrRejected, ErrDialFailed} {
				if other != tc.sentinel {
					require.NotErrorIs(t, de, other)
				}
			}
			require.ErrorIs(t, de, tc.err, "the cause stays reachable")
			require.Equal(t, tc.outcome, OutcomeOf(de))
		})
	}
}

func TestClassifyDialErrorWithoutStatusUsesTheRingWindow(t *testing.T) {
	ctx := context.Background()
	canceled := twirp.NewError(twirp.Canceled, "canceled") // older SIP services at the end of the ring window
	const ring = 20 * time.Second

	de := ClassifyDialError(ctx, canceled, ring, ring)
	require.Equal(t, NoAnswer, de.Outcome)
	require.ErrorIs(t, de, ErrNoAnswer)

	de = ClassifyDialError(ctx, canceled, 2*time.Second, ring)
	require.Equal(t, Failed, de.Outcome, "canceled long before the ring window ended is not a no-answer")

	de = ClassifyDialError(ctx, twirp.NewError(twirp.DeadlineExceeded, "x"), ring+time.Second, ring)
	require.Equal(t, NoAnswer, de.Outcome)
}

func TestClassifyDialErrorWhenWeGaveUp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	de := ClassifyDialError(ctx, twirp.NewError(twirp.Canceled, "canceled"), time.Minute, time.Second)
	require.Equal(t, Failed, de.Outcome)
	require.ErrorIs(t, de, context.Canceled, "a shutdown is told apart from a network failure")
	require.ErrorIs(t, de, ErrDialFailed)
}

func TestOutcomeOf(t *testing.T) {
	require.Equal(t, Answered, OutcomeOf(nil))
	require.Equal(t, Failed, OutcomeOf(errors.New("other")))
	require.Equal(t, Busy, OutcomeOf(fmt.Errorf("wrapped: %w", &DialError{Outcome: Busy})))
}

func TestDialErrorMessageNamesTheSIPStatus(t *testing.T) {
	de := &DialError{Outcome: Busy, SIPCode: 486, SIPStatus: "Busy Here", Err: errors.New("INVITE failed")}
	require.Equal(t, "telephony: dial busy (SIP 486 Busy Here): INVITE failed", de.Error())
}
