package testenv

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// A port for a test's server is never one the kernel hands to outgoing
// connections, is never given twice, and can be bound.
func TestFreePortIsBelowTheEphemeralRangeAndNeverRepeats(t *testing.T) {
	t.Parallel()
	lo, hi := freePortRange()
	seen := map[int]bool{}
	for range 200 {
		p := FreePort(t)
		require.False(t, seen[p], "port %d given twice", p)
		seen[p] = true
		require.True(t, p >= lo && p < hi, "port %d outside %d-%d", p, lo, hi)
	}
	p := FreePort(t)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	require.NoError(t, err)
	require.NoError(t, l.Close())
	// The kernel's own picks (an outgoing connection's, a listen on :0)
	// come from the ephemeral range, which FreePort's range stays clear of.
	dial, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer dial.Close()
	kernel := dial.Addr().(*net.TCPAddr).Port
	require.False(t, kernel >= lo && kernel < hi, "the kernel's own pick %d is inside FreePort's range %d-%d", kernel, lo, hi)
}
