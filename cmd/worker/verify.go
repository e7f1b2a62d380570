package main

import (
	"context"
	"fmt"
	"time"

	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/health"
	"github.com/docshield/voice-worker/internal/queue"
)

// verifiers run deeper checks of one dependency each, reading only that
// dependency's settings.
var verifiers = []struct {
	target string
	run    func(ctx context.Context, e env) []health.Finding
}{
	{"redis", verifyRedis},
	{"mongo", verifyMongo},
	{"s3", verifyS3},
}

func cmdVerify(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "verify", "verify [--json] [--timeout 30s] redis|mongo|s3|all")
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
			findings = append(findings, v.run(ctx, e)...)
		}
	}
	if !known {
		fmt.Fprintf(e.stderr, "worker verify: unknown target %q (want redis, mongo, s3 or all)\n", target)
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
	return []health.Finding{{Target: target, Item: "config", Level: health.LevelFail, Detail: err.Error()}}
}

func verifyRedis(ctx context.Context, e env) []health.Finding {
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

func verifyMongo(ctx context.Context, e env) []health.Finding {
	mc, err := config.LoadMongo(e.lookup)
	if err != nil {
		return configFinding("mongo", err)
	}
	st, err := openStore(ctx, mc)
	if err != nil {
		return configFinding("mongo", err)
	}
	defer st.Close(context.WithoutCancel(ctx))
	return health.VerifyMongo(ctx, st)
}

func verifyS3(ctx context.Context, e env) []health.Finding {
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
