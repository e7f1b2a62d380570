package main

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/docshield/voice-worker/internal/bucket"
	"github.com/docshield/voice-worker/internal/call"
	"github.com/docshield/voice-worker/internal/campaign"
	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/queue"
	"github.com/docshield/voice-worker/internal/realtime"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/docshield/voice-worker/internal/telephony/calleesim"
	"github.com/docshield/voice-worker/internal/worker"
	"github.com/hibiken/asynq"
	"go.uber.org/zap"
)

// callDeps is what the call runner needs from the daemon's wiring.
type callDeps struct {
	// daemon is cancelled at SIGTERM: the shutdown budget counts from then.
	daemon   context.Context
	cfg      config.Config
	store    *store.Store
	storage  *bucket.Client
	campaign *campaign.Service
	analyze  *queue.Client
	ends     call.EndOutbox
	log      *zap.Logger
}

// buildRunner returns the runner that conducts calls, or nil when this
// worker has no telephony or no OpenAI key: call tasks are then retried,
// unclaimed, so nothing is dialed and nothing is lost. It also returns the
// LiveKit rooms (nil without LiveKit settings), which the reaper uses to
// hang up. The returned cleanup must run at exit.
func buildRunner(d callDeps) (call.AttemptRunner, call.RoomDeleter, func(), error) {
	cfg := d.cfg
	if !cfg.LiveKit.Enabled() {
		d.log.Warn("call.runner_disabled", zap.Bool("livekit", false), zap.Bool("openai", cfg.OpenAI.Enabled()))
		return nil, nil, func() {}, nil
	}
	telephony.SetSDKLogger(d.log)
	tcfg := telephonyConfig(cfg.LiveKit)
	// LiveKit's own limit on the SIP leg: a backstop if we die mid-call.
	tcfg.MaxCallDuration = call.DefaultMaxDuration + 2*time.Minute
	rooms, err := telephony.NewRooms(tcfg, d.log)
	if err != nil {
		return nil, nil, nil, err
	}
	if !cfg.OpenAI.Enabled() {
		d.log.Warn("call.runner_disabled", zap.Bool("livekit", true), zap.Bool("openai", false))
		return nil, rooms, func() {}, nil
	}
	recordings, stopRecordings, err := startRecordings(d)
	if err != nil {
		return nil, nil, nil, err
	}
	cleanup := stopRecordings
	var dialer telephony.Dialer
	if cfg.LiveKit.SimulateCallee {
		sim, err := calleesim.NewDialer(tcfg, calleesim.DialerOptions{Production: cfg.Env == config.Production, Logger: d.log})
		if err != nil {
			cleanup()
			return nil, nil, nil, err
		}
		cleanup = func() { sim.Close(); stopRecordings() }
		dialer = sim
	} else if dialer, err = telephony.NewSIPDialer(tcfg); err != nil {
		cleanup()
		return nil, nil, nil, err
	}
	r, err := call.NewRunner(call.Options{
		Store: d.store, Rooms: rooms, Dialer: dialer, Telephony: tcfg,
		Realtime: realtime.Config{BaseURL: cfg.OpenAI.BaseURL, APIKey: cfg.OpenAI.APIKey,
			Model: cfg.OpenAI.RealtimeModel, Voice: cfg.OpenAI.Voice},
		Prompts:    call.StorePrompts(d.store),
		DialCheck:  dialCheck(d.campaign),
		Analyze:    d.analyze,
		Ends:       d.ends,
		Recordings: recordings.Factory(),
		Timers:     call.Timers{Lease: cfg.Worker.CallLease}, // must equal the handler's lease
		Logger:     d.log,
	})
	if err != nil {
		cleanup()
		return nil, nil, nil, err
	}
	return r, rooms, cleanup, nil
}

// dialCheck asks the campaign right before dialing: still running, inside
// calling hours, not on the do-not-call list.
func dialCheck(camp *campaign.Service) func(ctx context.Context, c *store.Call) (string, error) {
	return func(ctx context.Context, c *store.Call) (string, error) {
		err := camp.CheckDial(ctx, c)
		if errors.Is(err, campaign.ErrMustNotDial) {
			return err.Error(), nil
		}
		return "", err
	}
}

// startRecordings starts the process's recording spool. The returned stop
// runs after the task server has stopped (its calls have ended and handed
// what storage did not take to the spool): the spool gets what is left of
// SHUTDOWN_TIMEOUT since the signal, less half the reserve for closing
// MongoDB and shipping the last logs, then records on each call what it
// could not store.
func startRecordings(d callDeps) (*call.Recordings, func(), error) {
	cfg := d.cfg
	rs, err := call.NewRecordings(call.RecordingOptions{
		Storage: d.storage, Store: d.store, Env: string(cfg.Env), Segment: cfg.Worker.RecordingSegment,
		Owner: ownerName(cfg.Worker.Name), Lease: cfg.Worker.CallLease,
		SpoolMemoryBytes: int64(cfg.Worker.RecordingSpoolMB) << 20, Logger: d.log,
	})
	if err != nil {
		return nil, nil, err
	}
	var signalled atomic.Int64
	stopWatch := context.AfterFunc(d.daemon, func() { signalled.Store(time.Now().UnixNano()) })
	rs.Start()
	return rs, func() {
		stopWatch()
		at := time.Now()
		if ns := signalled.Load(); ns != 0 {
			at = time.Unix(0, ns)
		}
		budget := cfg.Worker.ShutdownTimeout - worker.ShutdownReserve(cfg.Worker.ShutdownTimeout)/2
		ctx, cancel := context.WithDeadline(context.Background(), at.Add(budget))
		defer cancel()
		rs.Shutdown(ctx)
	}, nil
}

// endOnShutdown cancels a call's context as soon as the daemon is asked to
// stop: asynq only abandons a running handler when its shutdown timeout
// runs out, and a live call needs the signal at once to say goodbye in
// time and end as interrupted.
func endOnShutdown(daemon context.Context, h asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(daemon, cancel)()
		return h.ProcessTask(ctx, t)
	})
}
