package main

import (
	"context"
	"fmt"
	"time"

	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/logging"
	"go.mongodb.org/mongo-driver/v2/bson"
)

func cmdCall(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "call", "call show ATTEMPT-ID\n\nPrints the call document (status, steps, transcript, tools, recording, analysis) as JSON.")
	if code, done := parse(e, fs, args); done {
		return code
	}
	if fs.NArg() != 2 || fs.Arg(0) != "show" {
		fs.Usage()
		return 2
	}
	mc, err := config.LoadMongo(e.lookup)
	if err != nil {
		return configError(e, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	st, err := openStore(ctx, mc)
	if err != nil {
		return configError(e, err)
	}
	defer st.Close(context.WithoutCancel(ctx))
	doc, err := st.GetCallDocument(ctx, fs.Arg(1))
	if err != nil {
		fmt.Fprintf(e.stderr, "worker call show: %v\n", err)
		return 1
	}
	// The number is personal data; the last four digits identify the call.
	if p, ok := doc["phone"].(string); ok {
		doc["phone"] = logging.MaskPhone(p)
	}
	b, err := bson.MarshalExtJSONIndent(doc, false, false, "", "  ")
	if err != nil {
		fmt.Fprintf(e.stderr, "worker call show: %v\n", err)
		return 1
	}
	fmt.Fprintln(e.stdout, string(b))
	return 0
}
