package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/docshield/voice-worker/internal/campaign"
	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/health"
	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/phone"
	"github.com/docshield/voice-worker/internal/queue"
	"github.com/docshield/voice-worker/internal/realtime"
	"github.com/docshield/voice-worker/internal/telephony"
)

// verifiers run deeper checks of one dependency each, reading only that
// dependency's settings.
var verifiers = []struct {
	target string
	run    func(ctx context.Context, e env, o verifyOptions) []health.Finding
}{
	{"redis", verifyRedis},
	{"mongo", verifyMongo},
	{"s3", verifyS3},
	{"logtail", verifyLogTail},
	{"openai", verifyOpenAI},
	{"livekit", verifyLiveKit},
	{"sip", verifySIP},
	{"fleet", verifyFleet},
}

// verifyOptions is what one verification is asked to do.
type verifyOptions struct {
	explicit bool   // the target was named (not just part of all)
	call     string // verify sip --call: the number of a test INVITE
}

func cmdVerify(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "verify", "verify [--json] [--timeout 30s] [--call +15551234567] redis|mongo|s3|logtail|openai|livekit|sip|fleet|all")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	timeout := fs.Duration("timeout", 30*time.Second, "time limit for the whole verification")
	callTo := fs.String("call", "", "sip only: place a test call to this E.164 number through the trunk, then hang up (it rings a real phone)")
	if code, done := parse(e, fs, args); done {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	target := fs.Arg(0)
	if *callTo != "" && target != "sip" {
		fmt.Fprintln(e.stderr, "worker verify: --call goes with the sip target only")
		return 2
	}
	if *callTo != "" && !phone.Valid(*callTo) {
		fmt.Fprintln(e.stderr, "worker verify: --call must be an E.164 number like +15551234567")
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var findings []health.Finding
	known := false
	for _, v := range verifiers {
		if target == v.target || target == "all" {
			known = true
			findings = append(findings, v.run(ctx, e, verifyOptions{explicit: target == v.target, call: *callTo})...)
		}
	}
	if !known {
		fmt.Fprintf(e.stderr, "worker verify: unknown target %q (want redis, mongo, s3, logtail, openai, livekit, sip, fleet or all)\n", target)
		return 2
	}
	write := health.WriteFindings
	if *asJSON {
		write = health.WriteFindingsJSON
	}
	if err := write(e.stdout, findings); err != nil || health.Failed(findings) {
		return 1
	}
	return 0
}

func configFinding(target string, err error) []health.Finding {
	return []health.Finding{{Target: target, Item: "config", Level: health.LevelFail, Detail: config.OneLine(err)}}
}

func verifyRedis(ctx context.Context, e env, _ verifyOptions) []health.Finding {
	rc, err := config.LoadRedis(e.lookup)
	if err != nil {
		return configFinding("redis", err)
	}
	opt, err := queue.ConnOpt(rc)
	if err != nil {
		return configFinding("redis", err)
	}
	return health.VerifyRedis(ctx, opt)
}

func verifyMongo(ctx context.Context, e env, _ verifyOptions) []health.Finding {
	mc, err := config.LoadMongo(e.lookup)
	if err != nil {
		return configFinding("mongo", err)
	}
	st, err := openStore(ctx, mc)
	if err != nil {
		return configFinding("mongo", err)
	}
	defer st.Close(context.WithoutCancel(ctx))
	return append(health.VerifyMongo(ctx, st), mongoPoolFinding(mc)...)
}

// mongoPoolFinding warns when the pool is smaller than the calls need:
// they would wait for connections, and time out, at full load.
func mongoPoolFinding(mc config.Mongo) []health.Finding {
	f := &health.Findings{Target: "mongo"}
	if mc.MaxPoolSize < mc.NeededPool {
		f.Warn("pool", "MONGODB_MAX_POOL_SIZE=%d is below the %d connections WORKER_CONCURRENCY's calls need: at full load they wait for connections; unset it (it then follows WORKER_CONCURRENCY) or raise it",
			mc.MaxPoolSize, mc.NeededPool)
	} else {
		f.OK("pool", "%d connections for WORKER_CONCURRENCY's calls (%d needed)", mc.MaxPoolSize, mc.NeededPool)
	}
	return f.List
}

func verifyS3(ctx context.Context, e env, _ verifyOptions) []health.Finding {
	sc, err := config.LoadS3(e.lookup)
	if err != nil {
		return configFinding("s3", err)
	}
	c, err := openStorage(ctx, sc)
	if err != nil {
		return configFinding("s3", err)
	}
	return health.VerifyS3(ctx, c)
}

// verifyLogTail sends one test event. Shipping is optional, so under
// `verify all` a missing token is a warning, not a failure.
func verifyLogTail(ctx context.Context, e env, o verifyOptions) []health.Finding {
	f := &health.Findings{Target: "logtail"}
	lc, err := config.LoadLogTail(e.lookup)
	if err != nil {
		if !o.explicit && lc.SourceToken == "" {
			f.Warn("config", "LOGTAIL_SOURCE_TOKEN not set: logs go to stdout only")
			return f.List
		}
		return configFinding("logtail", err)
	}
	status, err := logging.VerifyLogTail(ctx, lc.IngestURL, lc.SourceToken)
	switch {
	case err != nil:
		f.Fail("ingest", "%s: %v", logging.RedactURL(lc.IngestURL), err)
	case status == http.StatusAccepted:
		f.OK("ingest", "test event accepted by %s (HTTP %d)", logging.RedactURL(lc.IngestURL), status)
	default:
		f.Fail("ingest", "HTTP %d from %s: %s", status, logging.RedactURL(lc.IngestURL), logging.StatusMeaning(status))
	}
	return f.List
}

// verifyOpenAI checks the key and that the realtime model exists. OpenAI is
// needed only for calls, so under `verify all` a missing key is a warning.
func verifyOpenAI(ctx context.Context, e env, o verifyOptions) []health.Finding {
	f := &health.Findings{Target: "openai"}
	oc, err := config.LoadOpenAI(e.lookup)
	if err != nil {
		if !o.explicit && oc.APIKey == "" {
			f.Warn("config", "OPENAI_API_KEY not set: this worker cannot hold conversations")
			return f.List
		}
		return configFinding("openai", err)
	}
	if err := realtime.Verify(ctx, oc.BaseURL, oc.APIKey, oc.RealtimeModel); err != nil {
		f.Fail("realtime model", "%v", err)
	} else {
		f.OK("realtime model", "%s is available at %s", oc.RealtimeModel, logging.RedactURL(oc.BaseURL))
	}
	return f.List
}

// verifyLiveKit checks reachability and credentials (it lists rooms).
// Telephony is needed only for calls, so under `verify all` a missing URL
// is a warning.
func verifyLiveKit(ctx context.Context, e env, o verifyOptions) []health.Finding {
	f := &health.Findings{Target: "livekit"}
	lc, err := config.LoadLiveKit(e.lookup)
	if err != nil {
		if !o.explicit && lc.URL == "" {
			f.Warn("config", "LIVEKIT_URL not set: this worker cannot place calls")
			return f.List
		}
		return configFinding("livekit", err)
	}
	if err := telephony.Verify(ctx, telephonyConfig(lc)); err != nil {
		f.Fail("api", "%v", err)
		return f.List
	}
	f.OK("api", "%s answered with these credentials", logging.RedactURL(lc.URL))
	if lc.SimulateCallee {
		f.Warn("dialer", "DIALER=sim: calls go to the callee simulator, not the phone network")
	} else {
		f.OK("dialer", "SIP trunk %s (worker verify sip checks it)", lc.SIPTrunkID)
	}
	return f.List
}

// verifySIP checks the outbound trunk calls go out on: LiveKit has it, it
// points somewhere, with digest credentials and numbers, and (with --call)
// a test INVITE through it reaches a phone. Only DIALER=sip needs a trunk,
// so under `verify all` a worker without one is a warning.
func verifySIP(ctx context.Context, e env, o verifyOptions) []health.Finding {
	f := &health.Findings{Target: "sip"}
	lc, err := config.LoadLiveKit(e.lookup)
	switch {
	case err != nil && (o.explicit || lc.URL != ""):
		return configFinding("sip", err)
	case lc.URL == "" || lc.SimulateCallee:
		if o.explicit {
			f.Fail("config", "DIALER=sip with LIVEKIT_URL and LIVEKIT_SIP_TRUNK_ID is needed to check the trunk")
		} else {
			f.Warn("config", "no SIP trunk in use (LIVEKIT_URL unset or DIALER=sim)")
		}
		return f.List
	}
	tcfg := telephonyConfig(lc)
	tr, err := telephony.InspectTrunk(ctx, tcfg)
	if err != nil {
		f.Fail("trunk", "%v", err)
		return f.List
	}
	f.OK("trunk", "%s (%q) exists in LiveKit", tr.ID, tr.Name)
	if tr.Address == "" {
		f.Fail("address", "the trunk has no address: INVITEs have nowhere to go")
	} else {
		f.OK("address", "INVITEs go to %s over %s", tr.Address, cmp.Or(tr.Transport, "UDP"))
	}
	switch {
	case tr.AuthUsername != "" && tr.HasPassword:
		f.OK("auth", "digest credentials set (username and password)")
	case tr.AuthUsername != "" || tr.HasPassword:
		f.Fail("auth", "only half of the digest credentials is set (username %t, password %t)", tr.AuthUsername != "", tr.HasPassword)
	default:
		f.Warn("auth", "no digest credentials: the carrier must accept LiveKit's address instead (IP authentication)")
	}
	masked := make([]string, len(tr.Numbers))
	for i, n := range tr.Numbers {
		masked[i] = logging.MaskPhone(n)
	}
	switch {
	case len(tr.Numbers) == 0:
		f.Fail("numbers", "the trunk has no numbers: calls would present no caller ID")
	case lc.CallerID != "" && !slices.Contains(tr.Numbers, lc.CallerID):
		f.Warn("numbers", "%s; CALLER_ID %s is not one of them, and a carrier may reject or rewrite it",
			strings.Join(masked, ", "), logging.MaskPhone(lc.CallerID))
	default:
		f.OK("numbers", "%s", strings.Join(masked, ", "))
	}
	if o.call != "" {
		testCall(ctx, f, tcfg, o.call)
	}
	return f.List
}

// testCall places a real call through the trunk to number and hangs up as
// soon as it is answered. It is a dial like any other: never outside the
// calling hours where the number rings.
func testCall(ctx context.Context, f *health.Findings, tcfg telephony.Config, number string) {
	const item = "test call"
	masked := logging.MaskPhone(number)
	w, err := campaign.LegalWindow(number, "")
	if err == nil {
		if why := w.Closed(time.Now()); why != "" {
			err = errors.New("outside calling hours (08:00–21:00 where the callee is): " + why)
		}
	}
	if err != nil {
		f.Fail(item, "%s not dialed: %v", masked, err)
		return
	}
	rooms, err := telephony.NewRooms(tcfg, nil)
	if err != nil {
		f.Fail(item, "%v", err)
		return
	}
	dialer, err := telephony.NewSIPDialer(tcfg)
	if err != nil {
		f.Fail(item, "%v", err)
		return
	}
	id := "verify-sip-" + time.Now().UTC().Format("20060102T150405.000")
	room, err := rooms.Create(ctx, id)
	if err != nil {
		f.Fail(item, "%v", err)
		return
	}
	defer func() { // also when the dial ran out of time
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), telephony.HangupTimeout)
		defer cancel()
		_ = rooms.Delete(dctx, room)
	}()
	ring := telephony.DefaultRingTimeout
	if d, ok := ctx.Deadline(); ok {
		ring = min(ring, time.Until(d)-2*time.Second) // leave time to hang up
	}
	if ring <= 0 {
		f.Fail(item, "no time left to ring %s: raise --timeout", masked)
		return
	}
	start := time.Now()
	leg, err := dialer.Dial(ctx, telephony.DialRequest{AttemptID: id, Room: room, To: number, RingTimeout: ring})
	took := time.Since(start).Round(100 * time.Millisecond)
	switch telephony.OutcomeOf(err) {
	case telephony.Answered:
		herr := rooms.Hangup(ctx, leg)
		if herr != nil {
			f.Fail(item, "%s answered after %s (SIP call %s), but the hang-up failed: %v", masked, took, leg.SIPCallID, herr)
			return
		}
		f.OK(item, "%s answered after %s (SIP call %s); hung up", masked, took, leg.SIPCallID)
	case telephony.Failed:
		f.Fail(item, "%s: %v", masked, err)
	default:
		// The carrier answered the INVITE: the trunk works, the phone did
		// not pick up. (A trunk that never answers at all also reads as
		// no answer, after the ring timeout.)
		f.Warn(item, "%s not answered after %s: %v", masked, took, err)
	}
}
