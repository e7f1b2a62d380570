package realtime

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAPIErrorClasses(t *testing.T) {
	cases := []struct {
		err  APIError
		want error
	}{
		{APIError{Type: "invalid_request_error", Code: "session_expired", Message: "Your session hit the maximum duration of 60 minutes."}, ErrSessionExpired},
		{APIError{Type: "invalid_request_error", Message: "Your session hit the maximum duration of 60 minutes."}, ErrSessionExpired},
		{APIError{Type: "rate_limit_error", Code: "rate_limit_exceeded"}, ErrRateLimited},
		{APIError{Type: "requests", Code: "rate_limit_exceeded"}, ErrRateLimited},
		{APIError{Type: "server_error", Message: "The server had an error."}, ErrServer},
		{APIError{Type: "invalid_request_error", Code: "invalid_value"}, ErrInvalidRequest},
		{APIError{Type: "invalid_request_error", Code: "response_cancel_not_active"}, ErrInvalidRequest},
	}
	all := []error{ErrSessionExpired, ErrRateLimited, ErrServer, ErrInvalidRequest}
	for _, c := range cases {
		err := &c.err
		for _, class := range all {
			require.Equal(t, class == c.want, errors.Is(err, class), "%v vs %v", err, class)
		}
		require.Equal(t, c.want == ErrSessionExpired, err.Fatal())
	}
	require.NoError(t, (&APIError{Type: "insufficient_quota"}).Unwrap(), "unknown types have no class")
}

func TestAPIErrorMessageNamesEverything(t *testing.T) {
	err := &APIError{Type: "invalid_request_error", Code: "invalid_value", Param: "session.type", EventID: "evt_c1", Message: "bad"}
	require.Equal(t, "realtime: api error type=invalid_request_error code=invalid_value param=session.type event=evt_c1: bad", err.Error())
}

func TestCloseErrorMatchesCause(t *testing.T) {
	cause := &APIError{Type: "invalid_request_error", Code: "session_expired"}
	err := error(&CloseError{Code: 1000, Cause: cause})
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, err, ErrSessionExpired)
	require.NotErrorIs(t, &CloseError{Code: 1006, Reason: "EOF"}, ErrSessionExpired)
	require.Contains(t, err.Error(), "code 1000")
}

func TestRedact(t *testing.T) {
	require.Equal(t, "Incorrect API key provided: [redacted].", redact("Incorrect API key provided: sk-abc.", "sk-abc"))
	require.Equal(t, "x", redact("x", ""))
}
