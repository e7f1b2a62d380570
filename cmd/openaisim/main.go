// Command openaisim serves the OpenAI simulators (Realtime WebSocket and
// chat completions) on loopback for `make dev`: the worker reaches them
// through OPENAI_BASE_URL like the real API. It is a test double, never part
// of a deployment; the worker's config refuses a loopback OPENAI_BASE_URL in
// production.
//
//	openaisim --script scenario.json [--addr 127.0.0.1:0] [--key sk-...] [--url-file path]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/docshield/voice-worker/internal/analysis/chatsim"
	"github.com/docshield/voice-worker/internal/openaisim"
	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on")
	scriptFile := flag.String("script", "", "the agent's scenario (realtimesim.Script JSON)")
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
			fmt.Fprintf(os.Stderr, "openaisim: --script %s: %v\n", *scriptFile, err)
			os.Exit(2)
		}
	}
	// Chat completions answer every analysis from the schema it was sent.
	srv, base, err := openaisim.Start(*addr, *key, script, chatsim.Script{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "openaisim: %v\n", err)
		os.Exit(1)
	}
	defer srv.Close()
	if *urlFile != "" {
		if err := os.WriteFile(*urlFile, []byte(base+"\n"), 0o600); err != nil {
			fmt.Fprintf(os.Stderr, "openaisim: %v\n", err)
			os.Exit(1)
		}
	}
	fmt.Fprintf(os.Stderr, "openaisim: serving %s\n", base)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
}
