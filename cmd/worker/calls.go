package main

import (
	"context"
	"errors"
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

// callDeps is what the calls need from the daemon's wiring.
type callDeps struct {
	cfg      config.Config
	owner    string
	store    *store.Store
	storage  *bucket.Client
	campaign *campaign.Service
	analyze  *queue.Client
	ends     call.EndOutbox
	fleet    *fleetParts // the dial rate, and the audio meter calls report to
	log      *zap.Logger
}

// callParts are what placing calls takes: the runner (nil when this worker
// has no LiveKit or no OpenAI settings: call tasks then wait for one that
// has, unclaimed), the LiveKit rooms (nil without LiveKit; the reaper
// hangs up with them), and the recording spool with its start and stop.
type callParts struct {
	runner call.AttemptRunner
	rooms  call.RoomDeleter
	// recordings is the spool; nil without a runner.
	recordings *call.Recordings
	// closeDialer releases the callee simulator; nil for SIP.
	closeDialer func()
	d           callDeps
}

// buildCalls builds the call runner and what it uses, starting nothing.
func buildCalls(d callDeps) (callParts, error) {
	cfg := d.cfg
	p := callParts{d: d}
	if !cfg.LiveKit.Enabled() {
		d.log.Warn("call.runner_disabled", zap.Bool("livekit", false), zap.Bool("openai", cfg.OpenAI.Enabled()))
		return p, nil
	}
	telephony.SetSDKLogger(d.log)
	tcfg := telephonyConfig(cfg.LiveKit)
	// LiveKit's own limit on the SIP leg: a backstop if we die mid-call.
	tcfg.MaxCallDuration = call.DefaultMaxDuration + 2*time.Minute
	rooms, err := telephony.NewRooms(tcfg, d.log)
	if err != nil {
		return p, err
	}
	p.rooms = rooms
	if !cfg.OpenAI.Enabled() {
		d.log.Warn("call.runner_disabled", zap.Bool("livekit", true), zap.Bool("openai", false))
		return p, nil
	}
	var dialer telephony.Dialer
	if cfg.LiveKit.SimulateCallee {
		sim, err := calleesim.NewDialer(tcfg, calleesim.DialerOptions{Production: cfg.Env == config.Production, Logger: d.log})
		if err != nil {
			return p, err
		}
		p.closeDialer, dialer = sim.Close, sim
	} else if dialer, err = telephony.NewSIPDialer(tcfg); err != nil {
		return p, err
	}
	if p.recordings, err = call.NewRecordings(call.RecordingOptions{
		Storage: d.storage, Store: d.store, Env: string(cfg.Env), Segment: cfg.Worker.RecordingSegment,
		Owner: d.owner, Lease: cfg.Worker.CallLease,
		SpoolMemoryBytes: int64(cfg.Worker.RecordingSpoolMB) << 20, Logger: d.log,
	}); err != nil {
		p.shutdown(time.Now())
		return p, err
	}
	p.runner, err = call.NewRunner(call.Options{
		Store: d.store, Rooms: rooms, Dialer: dialer, Telephony: tcfg,
		Realtime: realtime.Config{BaseURL: cfg.OpenAI.BaseURL, APIKey: cfg.OpenAI.APIKey,
			Model: cfg.OpenAI.RealtimeModel, Voice: cfg.OpenAI.Voice},
		Prompts:    call.StorePrompts(d.store),
		DialCheck:  d.fleet.dialCheck(dialCheck(d.campaign)),
		Audio:      d.fleet.audio,
		Analyze:    d.analyze,
		Ends:       d.ends,
		Recordings: p.recordings.Factory(),
		Logger:     d.log,
	})
	if err != nil {
		p.shutdown(time.Now())
		return p, err
	}
	return p, nil
}

// start starts the recording spool.
func (p *callParts) start() {
	if p.recordings != nil {
		p.recordings.Start()
	}
}

// shutdown runs after the task server has stopped (the calls have ended
// and handed the spool what storage did not take): the spool gets what is
// left of SHUTDOWN_TIMEOUT since the stop was asked for (stopAt), less half
// the reserve for closing MongoDB and shipping the last logs, then records
// on each call what it could not store.
func (p *callParts) shutdown(stopAt time.Time) {
	if p.recordings != nil {
		cfg := p.d.cfg
		budget := cfg.Worker.ShutdownTimeout - worker.ShutdownReserve(cfg.Worker.ShutdownTimeout)/2
		ctx, cancel := context.WithDeadline(context.Background(), stopAt.Add(budget))
		p.recordings.Shutdown(ctx)
		cancel()
	}
	if p.closeDialer != nil {
		p.closeDialer()
	}
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
