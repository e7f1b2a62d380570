package simserver

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestServesLoopbackOnlyOnceAndCloseWaitsForHolds(t *testing.T) {
	s := New("sim")
	_, err := s.Start("0.0.0.0:0", http.NotFoundHandler())
	require.ErrorContains(t, err, `sim: listen address "0.0.0.0:0" is not loopback`)
	addr, err := s.Start("127.0.0.1:0", http.NotFoundHandler())
	require.NoError(t, err)
	_, err = s.Start("127.0.0.1:0", http.NotFoundHandler())
	require.ErrorContains(t, err, "Start called twice")
	resp, err := http.Get("http://" + addr + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	release, err := s.Hold()
	require.NoError(t, err)
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	<-s.Quit() // Close began: a held connection sees it and ends
	select {
	case <-closed:
		t.Fatal("Close returned while a connection was held")
	default:
	}
	release()
	require.NoError(t, <-closed)
	_, err = s.Hold()
	require.ErrorIs(t, err, ErrClosed)
	require.NoError(t, s.Close(), "idempotent")
}
