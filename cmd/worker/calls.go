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
	"github.com/docshield/voice-worker/internal/recording"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/docshield/voice-worker/internal/telephony/calleesim"
	"github.com/hibiken/asynq"
	"go.uber.org/zap"
)

// recordingCloseTimeout bounds joining a call's recording at hang-up, so a
// call ending at SIGTERM still fits in the shutdown budget; what does not
// finish in time stays in storage as segments the call document points to.
const recordingCloseTimeout = 10 * time.Second

// callDeps is what the call runner needs from the daemon's wiring.
type callDeps struct {
	cfg      config.Config
	store    *store.Store
	storage  *bucket.Client
	campaign *campaign.Service
	analyze  *queue.Client
	log      *zap.Logger
}

// buildRunner returns the runner that conducts calls, or nil when this
// worker has no telephony or no OpenAI key: call tasks are then retried,
// unclaimed, so nothing is dialed and nothing is lost. The returned cleanup
// must run at exit.
func buildRunner(d callDeps) (call.AttemptRunner, func(), error) {
	cfg := d.cfg
	if !cfg.LiveKit.Enabled() || !cfg.OpenAI.Enabled() {
		d.log.Warn("call.runner_disabled", zap.Bool("livekit", cfg.LiveKit.Enabled()), zap.Bool("openai", cfg.OpenAI.Enabled()))
		return nil, func() {}, nil
	}
	telephony.SetSDKLogger(d.log)
	tcfg := telephonyConfig(cfg.LiveKit)
	// LiveKit's own limit on the SIP leg: a backstop if we die mid-call.
	tcfg.MaxCallDuration = call.DefaultMaxDuration + 2*time.Minute
	rooms, err := telephony.NewRooms(tcfg, d.log)
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() {}
	var dialer telephony.Dialer
	if cfg.LiveKit.SimulateCallee {
		sim, err := calleesim.NewDialer(tcfg, calleesim.DialerOptions{Production: cfg.Env == config.Production, Logger: d.log})
		if err != nil {
			return nil, nil, err
		}
		cleanup = func() { sim.Close() }
		dialer = sim
	} else if dialer, err = telephony.NewSIPDialer(tcfg); err != nil {
		return nil, nil, err
	}
	r, err := call.NewRunner(call.Options{
		Store: d.store, Rooms: rooms, Dialer: dialer, Telephony: tcfg,
		Realtime: realtime.Config{BaseURL: cfg.OpenAI.BaseURL, APIKey: cfg.OpenAI.APIKey,
			Model: cfg.OpenAI.RealtimeModel, Voice: cfg.OpenAI.Voice},
		Prompts:    call.StorePrompts(d.store),
		DialCheck:  dialCheck(d.campaign),
		Analyze:    d.analyze,
		Recordings: recorderFactory(d),
		Timers:     call.Timers{Lease: cfg.Worker.CallLease}, // must equal the handler's lease
		Logger:     d.log,
	})
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return r, cleanup, nil
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

// recorderFactory starts each answered call's two-channel recording and
// keeps the call document pointing at its stored segments while it runs.
func recorderFactory(d callDeps) call.RecorderFactory {
	return func(ctx context.Context, claim store.Claim, c *store.Call, answeredAt time.Time) (call.Recorder, error) {
		campaignID := ""
		if !c.CampaignID.IsZero() {
			campaignID = c.CampaignID.Hex()
		}
		rec, err := recording.New(recording.Config{
			AttemptID: c.ID, CampaignID: campaignID, Env: string(d.cfg.Env), Start: answeredAt,
			Storage: d.storage, Logger: d.log,
			OnPartial: func(ctx context.Context, p recording.PartialInfo) error {
				return d.store.RecordPartialRecording(ctx, claim, store.PartialRecording(p))
			},
			Options: recording.Options{CloseTimeout: recordingCloseTimeout, SegmentDuration: d.cfg.Worker.RecordingSegment},
		})
		if err != nil {
			return nil, err
		}
		return &clearingRecorder{Recorder: rec, store: d.store, claim: claim}, nil
	}
}

// clearingRecorder removes the partial-recording note once the final
// object exists, so a finished call points at one object only.
type clearingRecorder struct {
	*recording.Recorder
	store *store.Store
	claim store.Claim
}

func (r *clearingRecorder) Close(ctx context.Context) (*store.Recording, error) {
	res, err := r.Recorder.Close(ctx)
	if err == nil && res != nil {
		_ = r.store.ClearPartialRecording(ctx, r.claim) // a stale note is harmless: the final key is in it
	}
	return res, err
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
