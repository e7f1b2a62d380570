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

// A port given to one test process is not given to another while the test
// holds it: the lock file is per open file, so a second hold in this
// process is refused exactly as another process's would be.
func TestFreePortIsHeldAgainstOtherProcessesUntilTheTestEnds(t *testing.T) {
	t.Parallel()
	var port int
	t.Run("holder", func(t *testing.T) {
		port = FreePort(t)
		_, ok := holdPort(port)
		require.False(t, ok, "port %d taken again while its test runs", port)
	})
	release, ok := holdPort(port)
	require.True(t, ok, "port %d still held after its test ended", port)
	release()
}
