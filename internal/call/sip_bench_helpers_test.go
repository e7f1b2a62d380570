package call_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/monitor"
	"github.com/stretchr/testify/require"
)

// stackServer is one of the local stack's server processes, read through
// the health monitor's /proc readers.
type stackServer struct {
	name string
	proc monitor.ProcFS
}

// stackServers are the servers devstack started for this process, by
// their command name ("livekit-sip", "server" for livekit-server,
// "redis-server", "minio"): only this stack's, not another run's on the
// same machine.
func stackServers(b testing.TB) map[string]stackServer {
	b.Helper()
	out := map[string]stackServer{}
	for _, p := range stackProcs(b) {
		// procOf links <Proc>/self to /proc/<pid>.
		target, err := os.Readlink(filepath.Join(p.Proc, "self"))
		require.NoError(b, err)
		comm, err := os.ReadFile(filepath.Join(target, "comm"))
		if err != nil {
			continue // it exited
		}
		name := strings.TrimSpace(string(comm))
		out[name] = stackServer{name: name, proc: p}
	}
	return out
}

// serverUsage is a server's CPU time and RSS at one moment.
type serverUsage struct {
	at  time.Time
	cpu time.Duration
	rss int64
}

func (s stackServer) usage(b testing.TB) serverUsage {
	b.Helper()
	u := serverUsage{at: time.Now()}
	var err error
	u.cpu, err = s.proc.CPUTime()
	require.NoError(b, err, "%s's CPU time", s.name)
	u.rss, err = s.proc.RSSBytes()
	require.NoError(b, err, "%s's RSS", s.name)
	return u
}

// serverWindow is a server's use over a window: CPU time, and the most
// memory it held (sampled every sipLegSample).
type serverWindow struct {
	cpu     time.Duration
	peakRSS int64
}

// watch samples the server until the returned function is called, which
// stops the sampler and returns the window.
func (s stackServer) watch() func() serverWindow {
	quit, done := make(chan struct{}), make(chan struct{})
	first, _ := s.proc.CPUTime()
	var w serverWindow
	sample := func() {
		if rss, err := s.proc.RSSBytes(); err == nil {
			w.peakRSS = max(w.peakRSS, rss)
		}
	}
	go func() {
		defer close(done)
		t := time.NewTicker(sipLegSample)
		defer t.Stop()
		for {
			sample()
			select {
			case <-t.C:
			case <-quit:
				return
			}
		}
	}()
	return func() serverWindow {
		close(quit)
		<-done
		sample()
		last, _ := s.proc.CPUTime()
		w.cpu = last - first
		return w
	}
}
