// Command openaisim serves the OpenAI simulators (Realtime WebSocket and
// chat completions) on loopback for `make dev`: the worker reaches them
// through OPENAI_BASE_URL like the real API. It is a test double, never part
// of a deployment; the worker's config refuses a loopback OPENAI_BASE_URL in
// production.
//
//	openaisim --script scenario.json [--analysis answers.json] [--addr 127.0.0.1:0] [--key sk-...] [--url-file path]
package main

import (
	"bytes"
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
	analysisFile := flag.String("analysis", "", "the post-call analyses' answers (chatsim.Script JSON); without it each is generated from the schema it was asked for")
	flag.Parse()

	var script realtimesim.Script
	readJSON("--script", *scriptFile, &script)
	var answers chatsim.Script
	readJSON("--analysis", *analysisFile, &answers)
	if err := answers.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "openaisim: --analysis %s: %v\n", *analysisFile, err)
		os.Exit(2)
	}
	srv, base, err := openaisim.Start(*addr, *key, script, answers)
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

// readJSON decodes file into v strictly (unknown fields refused); "" leaves
// v as it is.
func readJSON(flagName, file string, v any) {
	if file == "" {
		return
	}
	b, err := os.ReadFile(file)
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		err = dec.Decode(v)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "openaisim: %s %s: %v\n", flagName, file, err)
		os.Exit(2)
	}
}
