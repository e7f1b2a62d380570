package calleesim

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/livekit/protocol/livekit"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// ErrRefusedInProduction: the simulator never stands in for the phone
// network of a production worker.
var ErrRefusedInProduction = errors.New("calleesim: the phone network simulator is refused in production")

// DialerOptions configure the simulated phone network.
type DialerOptions struct {
	// Production must be true when the worker runs with APP_ENV=production;
	// NewDialer then refuses to build.
	Production bool
	// Script decides how the callee of each dial behaves; nil answers at
	// once and says nothing.
	Script func(req telephony.DialRequest) Script
	// Callee configures every simulated callee (its identity comes from
	// the dial request).
	Callee Options
	Logger *zap.Logger
}

// Dialer is a telephony.Dialer whose callees are simulated participants
// joining the call's room. The SIP requests it would have sent are built
// by the same code as the real dialer's and kept for inspection.
type Dialer struct {
	// Immutable after NewDialer.
	cfg    telephony.Config
	opts   DialerOptions
	log    *zap.Logger
	ctx    context.Context // ends every script on Close
	cancel context.CancelFunc

	wg sync.WaitGroup // scripts and callee watchers

	mu        sync.Mutex // guards the fields below
	closed    bool
	calls     map[string]*Call // by room; ended calls are kept for inspection, up to keepEnded
	ended     []string         // rooms of ended calls, oldest first
	requests  []*livekit.CreateSIPParticipantRequest
	transfers []*livekit.TransferSIPParticipantRequest
}

// Bounds on what a long-running simulated network (make dev) remembers.
const (
	keepEnded    = 32
	keepRequests = 256
)

// Call is one answered simulated call.
type Call struct {
	Callee *Callee
	done   chan struct{}
	err    error // of the script; read after done
}

// Done is closed when the call's script has finished.
func (c *Call) Done() <-chan struct{} { return c.done }

// Err is the script's error once Done is closed: nil, ErrHungUp (the agent
// hung up first) or another failure.
func (c *Call) Err() error {
	<-c.done
	return c.err
}

var _ telephony.Dialer = (*Dialer)(nil)

// NewDialer returns the simulated phone network.
func NewDialer(cfg telephony.Config, opts DialerOptions) (*Dialer, error) {
	if opts.Production {
		return nil, ErrRefusedInProduction
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Callee.Logger == nil {
		opts.Callee.Logger = opts.Logger
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Dialer{cfg: cfg, opts: opts, log: opts.Logger, ctx: ctx, cancel: cancel, calls: map[string]*Call{}}, nil
}

// Dial implements telephony.Dialer: it rings for the script's RingFor
// (bounded by the ring timeout), then refuses as scripted or answers by
// joining the room and running the script.
func (d *Dialer) Dial(ctx context.Context, req telephony.DialRequest) (telephony.CallLeg, error) {
	in, err := telephony.CreateSIPParticipantRequest(d.cfg, req)
	if err != nil {
		return telephony.CallLeg{}, &telephony.DialError{Outcome: telephony.Failed, Err: err}
	}
	d.mu.Lock()
	closed := d.closed
	d.requests = keepLast(append(d.requests, proto.Clone(in).(*livekit.CreateSIPParticipantRequest)), keepRequests)
	d.mu.Unlock()
	if closed {
		return telephony.CallLeg{}, &telephony.DialError{Outcome: telephony.Failed, Err: errors.New("calleesim: dialer is closed")}
	}
	// The network's view of each dial, as a carrier would count it: the
	// fleet test counts dials per attempt and their rate from these lines.
	d.log.Info("calleesim.dial", zap.String("room", in.RoomName))
	script := Script{}
	if d.opts.Script != nil {
		script = d.opts.Script(req)
	}

	start := time.Now()
	ringTimeout := in.RingingTimeout.AsDuration()
	if script.Outcome == telephony.NoAnswer || script.RingFor >= ringTimeout {
		// LiveKit cancels the INVITE when the ring window ends and reports 408.
		return d.refuse(ctx, ringTimeout, start, ringTimeout, livekit.SIPStatusCode_SIP_STATUS_REQUEST_TIMEOUT, "Request Timeout")
	}
	switch script.Outcome {
	case telephony.Busy:
		return d.refuse(ctx, script.RingFor, start, ringTimeout, livekit.SIPStatusCode_SIP_STATUS_BUSY_HERE, "Busy Here")
	case telephony.Rejected:
		return d.refuse(ctx, script.RingFor, start, ringTimeout, livekit.SIPStatusCode_SIP_STATUS_GLOBAL_DECLINE, "Decline")
	case telephony.Failed:
		return d.refuse(ctx, script.RingFor, start, ringTimeout, livekit.SIPStatusCode_SIP_STATUS_SERVICE_UNAVAILABLE, "Service Unavailable")
	case "", telephony.Answered:
	default:
		return telephony.CallLeg{}, &telephony.DialError{Outcome: telephony.Failed, Err: fmt.Errorf("calleesim: unknown scripted outcome %q", script.Outcome)}
	}
	if err := ring(ctx, script.RingFor); err != nil {
		de := telephony.ClassifyDialError(ctx, err, time.Since(start), ringTimeout)
		return telephony.CallLeg{}, de
	}

	opts := d.opts.Callee
	opts.Identity = in.ParticipantIdentity
	callee, err := Answer(ctx, d.cfg, in.RoomName, opts)
	if err != nil {
		de := telephony.ClassifyDialError(ctx, err, time.Since(start), ringTimeout)
		return telephony.CallLeg{}, de
	}
	call := &Call{Callee: callee, done: make(chan struct{})}
	if !d.start(in.RoomName, call, script) {
		callee.HangUp()
		return telephony.CallLeg{}, &telephony.DialError{Outcome: telephony.Failed, Err: errors.New("calleesim: dialer closed while dialing")}
	}
	d.log.Info("calleesim.answered", zap.String("room", in.RoomName), zap.String("identity", in.ParticipantIdentity))
	return telephony.CallLeg{Room: in.RoomName, Identity: in.ParticipantIdentity, ParticipantID: callee.SID()}, nil
}

// start registers an answered call and starts its two goroutines, both
// owned by the Dialer (Close waits for them): the script, on the dialer's
// context since the call outlives the Dial request; and a watcher that
// closes a callee removed from the room (the agent hung up), so its voice
// stops pacing.
func (d *Dialer) start(room string, call *Call, script Script) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	d.calls[room] = call
	d.wg.Add(2)
	go func() {
		defer d.wg.Done()
		call.err = call.Callee.Run(d.ctx, script)
		close(call.done)
	}()
	go func() {
		defer d.wg.Done()
		select {
		case <-call.Callee.Gone():
		case <-d.ctx.Done():
		}
		call.Callee.HangUp()
		d.forget(room)
	}()
	return true
}

// forget keeps an ended call for inspection until keepEnded newer calls
// have ended.
func (d *Dialer) forget(room string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ended = append(d.ended, room)
	if len(d.ended) > keepEnded {
		old := d.ended[0]
		d.ended = d.ended[1:]
		if c := d.calls[old]; c != nil && isClosed(c.Callee.Gone()) {
			delete(d.calls, old)
		}
	}
}

func keepLast[T any](s []T, n int) []T {
	if len(s) > n {
		return append(s[:0:0], s[len(s)-n:]...)
	}
	return s
}

// refuse rings for ringFor, then fails the dial the way LiveKit reports a
// SIP final response: a SIPStatus in the error's details.
func (d *Dialer) refuse(ctx context.Context, ringFor time.Duration, start time.Time, ringTimeout time.Duration, code livekit.SIPStatusCode, reason string) (telephony.CallLeg, error) {
	var cause error = &livekit.SIPStatus{Code: code, Status: reason}
	if err := ring(ctx, ringFor); err != nil {
		cause = err
	}
	de := telephony.ClassifyDialError(ctx, cause, time.Since(start), ringTimeout)
	return telephony.CallLeg{}, de
}

// ring is the phone ringing: simulated time passing, bounded by ctx.
func ring(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Transfer implements telephony.Dialer: it checks and records the request
// LiveKit would receive, then the callee leaves the room as it would once
// the transfer target answered.
func (d *Dialer) Transfer(ctx context.Context, leg telephony.CallLeg, req telephony.TransferRequest) error {
	in, err := telephony.TransferSIPParticipantRequest(d.cfg, leg, req)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.transfers = keepLast(append(d.transfers, proto.Clone(in).(*livekit.TransferSIPParticipantRequest)), keepRequests)
	call := d.calls[leg.Room]
	d.mu.Unlock()
	if call == nil || call.Callee.Identity() != leg.Identity {
		return &telephony.TransferError{Err: fmt.Errorf("calleesim: no simulated callee %s in room %s", leg.Identity, leg.Room)}
	}
	call.Callee.HangUp()
	return ctx.Err()
}

// Requests returns the CreateSIPParticipant requests LiveKit would have
// received, in order.
func (d *Dialer) Requests() []*livekit.CreateSIPParticipantRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*livekit.CreateSIPParticipantRequest(nil), d.requests...)
}

// Transfers returns the TransferSIPParticipant requests, in order.
func (d *Dialer) Transfers() []*livekit.TransferSIPParticipantRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*livekit.TransferSIPParticipantRequest(nil), d.transfers...)
}

// Call returns the answered call in room, or nil.
func (d *Dialer) Call(room string) *Call {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[room]
}

// Close hangs up every simulated callee and waits for their goroutines.
func (d *Dialer) Close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
}
