package call_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/call"
	"github.com/docshield/voice-worker/internal/monitor"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/docshield/voice-worker/internal/telephony/sipphone"
	"github.com/stretchr/testify/require"
	"gopkg.in/hraban/opus.v2"
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
		if _, ok := out[p.name]; !ok { // the server, not a child of the same name
			out[p.name] = p
		}
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

// legTap wraps the worker's recorder factory: every packet goes on to the
// real recorder, and the tap notes, per call, when loud callee packets
// arrived at the worker and when loud agent packets were sent (decoded to
// tell speech from silence, at the phone's speech threshold). With the
// phone's own stamps they split each figure into the leg in, the worker
// (and the model) and the leg out.
type legTap struct {
	next call.RecorderFactory

	mu    sync.Mutex
	calls map[string]*tappedCall // by attempt id
}

func newLegTap(next call.RecorderFactory) *legTap {
	return &legTap{next: next, calls: map[string]*tappedCall{}}
}

func (t *legTap) factory(ctx context.Context, claim store.Claim, c *store.Call, answeredAt time.Time) (call.Recorder, error) {
	rec, err := t.next(ctx, claim, c, answeredAt)
	if err != nil {
		return nil, err
	}
	tc := &tappedCall{Recorder: rec, pcm: make([]int16, 5760)}
	if tc.calleeDec, err = opus.NewDecoder(rate, 1); err != nil {
		return nil, err
	}
	if tc.agentDec, err = opus.NewDecoder(rate, 1); err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.calls[c.ID] = tc
	t.mu.Unlock()
	return tc, nil
}

func (t *legTap) call(id string) *tappedCall {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.calls[id]
}

// tappedCall is one call's recorder and its loud packets' times.
type tappedCall struct {
	call.Recorder

	mu                    sync.Mutex // guards the fields below
	calleeDec, agentDec   *opus.Decoder
	pcm                   []int16
	calleeLoud, agentLoud []time.Time
}

func (c *tappedCall) CalleePacket(at time.Time, pkt []byte) {
	c.Recorder.CalleePacket(at, pkt)
	c.note(c.calleeDec, &c.calleeLoud, at, pkt)
}

func (c *tappedCall) AgentPacket(at time.Time, pkt []byte) {
	c.Recorder.AgentPacket(at, pkt)
	c.note(c.agentDec, &c.agentLoud, at, pkt)
}

func (c *tappedCall) note(dec *opus.Decoder, loud *[]time.Time, at time.Time, pkt []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := dec.Decode(pkt, c.pcm)
	if err == nil && rmsOf(c.pcm[:n]) >= sipphone.DefaultSpeechThreshold {
		*loud = append(*loud, at)
	}
}

// loud returns copies of the times of the loud callee packets (arrived)
// and the loud agent packets (sent, on the pacer's schedule), in order.
func (c *tappedCall) loud() (callee, agent []time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calleeLoud), slices.Clone(c.agentLoud)
}

// numberingDialer dials each attempt at a number of its own, so the
// phone's call and the worker's attempt pair up (the phone answers every
// number alike).
type numberingDialer struct {
	telephony.Dialer

	mu      sync.Mutex
	numbers map[string]string // attempt id → number
}

func (d *numberingDialer) assign(attempt, number string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.numbers[attempt] = number
}

func (d *numberingDialer) Dial(ctx context.Context, req telephony.DialRequest) (telephony.CallLeg, error) {
	d.mu.Lock()
	if n := d.numbers[req.AttemptID]; n != "" {
		req.To = n
	}
	d.mu.Unlock()
	return d.Dialer.Dial(ctx, req)
}
