// Command realtimesim serves the OpenAI Realtime simulator on loopback for
// `make dev`: the worker reaches it through OPENAI_BASE_URL like the real
// API. It is a test double, never part of a deployment; the worker's config
// refuses a loopback OPENAI_BASE_URL in production.
//
//	realtimesim --script scenario.json [--addr 127.0.0.1:0] [--key sk-...] [--url-file path]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on")
	scriptFile := flag.String("script", "", "scenario JSON (realtimesim.Script)")
	key := flag.String("key", realtimesim.DefaultAPIKey, "the one API key accepted")
	urlFile := flag.String("url-file", "", "write the base URL here once listening")
	flag.Parse()

	var script realtimesim.Script
	if *scriptFile != "" {
		b, err := os.ReadFile(*scriptFile)
		if err == nil {
			err = json.Unmarshal(b, &script)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "realtimesim: --script %s: %v\n", *scriptFile, err)
			os.Exit(2)
		}
	}
	sim := realtimesim.New(script, realtimesim.WithAPIKey(*key))
	base, err := sim.Start(*addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "realtimesim: %v\n", err)
		os.Exit(1)
	}
	defer sim.Close()
	if *urlFile != "" {
		if err := os.WriteFile(*urlFile, []byte(base+"\n"), 0o600); err != nil {
			fmt.Fprintf(os.Stderr, "realtimesim: %v\n", err)
			os.Exit(1)
		}
	}
	fmt.Fprintf(os.Stderr, "realtimesim: serving %s\n", base)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
}
