package main

import (
	"context"

	"github.com/docshield/voice-worker/internal/dialrate"
	"github.com/docshield/voice-worker/internal/elect"
	"github.com/docshield/voice-worker/internal/fleet"
	"github.com/docshield/voice-worker/internal/monitor"
	"github.com/docshield/voice-worker/internal/scaler"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
)

// fleetParts are what a worker does as one dyno of many: its presence and
// drain flag, the elected reporter of cluster-wide alerts, admission of
// new calls by CPU and audio health, the fleet's dial rate on the trunk,
// and, with AUTOSCALE, the formation scaler it runs when elected. Built by
// newDaemon, started before the task server, stopped after it.
type fleetParts struct {
	member    *fleet.Member
	reporter  *elect.Elector
	admission *monitor.Admission
	audio     *monitor.AudioMeter // the call runner tracks its calls here
	dialRate  *dialrate.Limiter   // nil without DIAL_RATE_PER_SECOND
	scaleLead *elect.Elector      // nil without AUTOSCALE
	scaler    *scaler.Scaler      // nil without AUTOSCALE
}

// buildFleet builds the parts, starting nothing. pressure is the one the
// memory evaluation drives; admission adds CPU and audio to it.
func buildFleet(d *deps, pressure *monitor.Pressure) (f fleetParts, err error) {
	cfg, fc := d.cfg, d.cfg.Fleet
	f.audio = monitor.NewAudioMeter()
	if f.member, err = fleet.NewMember(fleet.MemberOptions{Redis: d.rdb, Dyno: fc.Dyno, Owner: d.owner, Logger: d.log}); err != nil {
		return f, err
	}
	if f.reporter, err = elect.New(elect.Options{Redis: d.rdb, Role: "reporter", Owner: d.owner, Lease: fc.LeaderLease, Logger: d.log}); err != nil {
		return f, err
	}
	if f.admission, err = monitor.NewAdmission(monitor.AdmissionOptions{Logger: d.log, Pressure: pressure, Audio: f.audio,
		CPUWarnPct: float64(cfg.Health.CPUWarnPct), Every: fc.AdmissionInterval,
		LateFramesPct: fc.AdmissionLateFramesPct, DroppedInputPct: fc.AdmissionDroppedInputPct,
		WaitRatio: fc.AdmissionWaitRatio, NoRunQueue: fc.AdmissionWaitRatio == 0}); err != nil {
		return f, err
	}
	if fc.DialRatePerSecond > 0 {
		trunk := cfg.LiveKit.SIPTrunkID
		if cfg.LiveKit.SimulateCallee {
			trunk = "sim"
		}
		if f.dialRate, err = dialrate.New(dialrate.Options{Redis: d.rdb, Trunk: trunk, PerSecond: fc.DialRatePerSecond,
			Burst: fc.DialRateBurst, MaxWait: fc.DialRateMaxWait, Logger: d.log}); err != nil {
			return f, err
		}
	}
	if a := fc.Autoscale; a.Enabled {
		api, err := scaler.NewHeroku(a.APIURL, a.APIKey, a.App, a.ProcessType)
		if err != nil {
			return f, err
		}
		if f.scaleLead, err = elect.New(elect.Options{Redis: d.rdb, Role: "scaler", Owner: d.owner, Lease: fc.LeaderLease, Logger: d.log}); err != nil {
			return f, err
		}
		if f.scaler, err = scaler.New(scaler.Options{Redis: d.rdb, Inspector: d.insp, API: api, Leader: f.scaleLead.Leader,
			ProcessType: a.ProcessType, MinDynos: a.MinDynos, MaxDynos: a.MaxDynos, CallsPerDyno: a.CallsPerDyno,
			TargetLatency: a.TargetLatency, Interval: a.Interval, UpCooldown: a.UpCooldown, DownCooldown: a.DownCooldown,
			DrainTimeout: a.DrainTimeout, Logger: d.log}); err != nil {
			return f, err
		}
	}
	return f, nil
}

// gateCalls wraps the call handler: a draining dyno and a trunk booked
// too far ahead defer new calls (no retry spent), and the dyno counts the
// calls it holds.
func (f *fleetParts) gateCalls(h asynq.Handler) asynq.Handler {
	h = f.member.Middleware(tasks.TypeCallOutbound)(h)
	if f.dialRate != nil {
		h = f.dialRate.Middleware(tasks.TypeCallOutbound)(h)
	}
	return h
}

// dialCheck puts the call's wait for its dial slot before the runner's
// last check, so that check still stands right before the phone rings.
func (f *fleetParts) dialCheck(check func(context.Context, *store.Call) (string, error)) func(context.Context, *store.Call) (string, error) {
	if f.dialRate == nil {
		return check
	}
	return f.dialRate.BeforeDial(check)
}

// start starts the duties.
func (f *fleetParts) start() {
	f.member.Start()
	f.reporter.Start()
	f.admission.Start()
	if f.scaler != nil {
		f.scaleLead.Start()
		f.scaler.Start()
	}
}

// shutdown stops them, giving the leases up so another dyno takes over at
// once, and withdraws the dyno's presence.
func (f *fleetParts) shutdown() {
	if f.scaler != nil {
		f.scaler.Shutdown()
		f.scaleLead.Shutdown()
	}
	f.admission.Shutdown()
	f.reporter.Shutdown()
	f.member.Shutdown()
}
