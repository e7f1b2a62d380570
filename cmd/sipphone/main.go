// Command sipphone runs the SIP phone simulator (package sipphone) for
// `make dev`: the carrier trunk and the handsets behind it that LiveKit's
// SIP service dials. It is a test double, never part of a deployment.
//
//	sipphone [--addr 127.0.0.1:5070] [--tcp] [--script talk] [--route +15550100002=busy ...] [--addr-file path]
//
// Scripts: talk (a short spoken conversation), busy, declined,
// unavailable, ring (until the caller gives up), hangup (mid-sentence),
// voicemail, ivr (press a digit), or a final status such as 404. The
// trunk's digest credentials come from SIPPHONE_USERNAME and
// SIPPHONE_PASSWORD (both or neither); SIPPHONE_AUTH_PROXY=true challenges
// with 407 instead of 401. Logs are JSON lines on stdout; SIGTERM stops it.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/telephony/sipphone"
	"github.com/emiago/diago/media"
	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5070", "IP and port to serve SIP on (UDP)")
	tcp := flag.Bool("tcp", false, "serve SIP over TCP on the same port too")
	script := flag.String("script", "talk", "script of numbers without a --route")
	level := flag.String("log-level", "info", "debug, info, warn or error")
	addrFile := flag.String("addr-file", "", "write the address served (host:port) here once listening")
	routes := map[string]string{}
	flag.Func("route", "NUMBER=SCRIPT: the script of one dialed number (repeatable)", func(v string) error {
		number, name, ok := strings.Cut(v, "=")
		if !ok || number == "" {
			return errors.New("want NUMBER=SCRIPT")
		}
		routes[number] = name
		return nil
	})
	flag.Parse()
	if err := run(*addr, *tcp, *script, routes, *level, *addrFile); err != nil {
		fmt.Fprintf(os.Stderr, "sipphone: %v\n", err)
		os.Exit(1)
	}
}

func run(addr string, tcp bool, script string, routes map[string]string, level, addrFile string) error {
	log, err := logging.New(logging.Options{Level: level, Fields: []zap.Field{zap.String("service", "sipphone")}})
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	// sipgo and diago log some things through package-level loggers.
	slogger := slog.New(zapslog.NewHandler(log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)).Core()))
	sip.SetDefaultLogger(slogger)
	media.SetDefaultLogger(slogger)

	cfg := sipphone.Config{Addr: addr, TCP: tcp, Logger: log}
	if cfg.Auth, err = authFromEnv(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if cfg.Default, err = sipphone.Named(ctx, script); err != nil {
		return fmt.Errorf("--script: %w", err)
	}
	p, err := sipphone.Start(cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	for number, name := range routes {
		s, err := sipphone.Named(ctx, name)
		if err == nil {
			err = p.Handle(number, s)
		}
		if err != nil {
			return fmt.Errorf("--route %s: %w", logging.MaskPhone(number), err)
		}
	}
	if addrFile != "" {
		if err := os.WriteFile(addrFile, []byte(p.Addr().String()+"\n"), 0o600); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}

func authFromEnv() (*sipphone.Auth, error) {
	user, pass := os.Getenv("SIPPHONE_USERNAME"), os.Getenv("SIPPHONE_PASSWORD")
	if user == "" && pass == "" {
		return nil, nil
	}
	if user == "" || pass == "" {
		return nil, errors.New("set both SIPPHONE_USERNAME and SIPPHONE_PASSWORD, or neither")
	}
	proxy, err := strconv.ParseBool(cmp.Or(os.Getenv("SIPPHONE_AUTH_PROXY"), "false"))
	if err != nil {
		return nil, fmt.Errorf("SIPPHONE_AUTH_PROXY: %w", err)
	}
	return &sipphone.Auth{Username: user, Password: pass, Proxy: proxy}, nil
}
