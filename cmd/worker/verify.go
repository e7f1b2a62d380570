package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/health"
	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/queue"
	"github.com/docshield/voice-worker/internal/realtime"
	"github.com/docshield/voice-worker/internal/telephony"
)

// verifiers run deeper checks of one dependency each, reading only that
// dependency's settings.
var verifiers = []struct {
	target string
	run    func(ctx context.Context, e env, explicit bool) []health.Finding
}{
	{"redis", verifyRedis},
	{"mongo", verifyMongo},
	{"s3", verifyS3},
	{"logtail", verifyLogTail},
	{"openai", verifyOpenAI},
	{"livekit", verifyLiveKit},
	{"fleet", verifyFleet},
}

func cmdVerify(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "verify", "verify [--json] [--timeout 30s] redis|mongo|s3|logtail|openai|livekit|fleet|all")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	timeout := fs.Duration("timeout", 30*time.Second, "time limit for the whole verification")
	if code, done := parse(e, fs, args); done {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	target := fs.Arg(0)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var findings []health.Finding
	known := false
	for _, v := range verifiers {
		if target == v.target || target == "all" {
			known = true
			findings = append(findings, v.run(ctx, e, target == v.target)...)
		}
	}
	if !known {
		fmt.Fprintf(e.stderr, "worker verify: unknown target %q (want redis, mongo, s3, logtail, openai, livekit, fleet or all)\n", target)
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

func verifyRedis(ctx context.Context, e env, _ bool) []health.Finding {
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

func verifyMongo(ctx context.Context, e env, _ bool) []health.Finding {
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

func verifyS3(ctx context.Context, e env, _ bool) []health.Finding {
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
func verifyLogTail(ctx context.Context, e env, explicit bool) []health.Finding {
	f := &health.Findings{Target: "logtail"}
	lc, err := config.LoadLogTail(e.lookup)
	if err != nil {
		if !explicit && lc.SourceToken == "" {
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
func verifyOpenAI(ctx context.Context, e env, explicit bool) []health.Finding {
	f := &health.Findings{Target: "openai"}
	oc, err := config.LoadOpenAI(e.lookup)
	if err != nil {
		if !explicit && oc.APIKey == "" {
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
func verifyLiveKit(ctx context.Context, e env, explicit bool) []health.Finding {
	f := &health.Findings{Target: "livekit"}
	lc, err := config.LoadLiveKit(e.lookup)
	if err != nil {
		if !explicit && lc.URL == "" {
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
		f.OK("dialer", "SIP trunk %s (the trunk itself is checked on the first dial)", lc.SIPTrunkID)
	}
	return f.List
}
