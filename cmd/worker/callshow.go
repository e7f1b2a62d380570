package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/store"
	"go.mongodb.org/mongo-driver/v2/bson"
)

const callSynopsis = `call show ATTEMPT-ID [--transcript] [--timeout 15s]

Prints the call document (status, steps, transcript, tools, recording,
analysis) as JSON. With --transcript, prints the conversation as text: who
said what, at which offset into the recording, then the agent's tool calls.
Phone numbers are masked as in the logs (+*******0100).`

func cmdCall(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "call", callSynopsis)
	transcript := fs.Bool("transcript", false, "print the conversation as text instead of the document")
	timeout := fs.Duration("timeout", 15*time.Second, "give up after this long")
	if code, done := parse(e, fs, args); done {
		return code
	}
	if fs.NArg() != 2 || fs.Arg(0) != "show" {
		fs.Usage()
		return 2
	}
	return withStore(ctx, e, *timeout, func(ctx context.Context, st *store.Store) int {
		if *transcript {
			c, err := st.GetCall(ctx, fs.Arg(1))
			if err != nil {
				fmt.Fprintf(e.stderr, "worker call show: %v\n", timedOut(ctx, err, *timeout))
				return 1
			}
			return exitCode(writeTranscript(e.stdout, c))
		}
		doc, err := st.GetCallDocument(ctx, fs.Arg(1))
		if err != nil {
			fmt.Fprintf(e.stderr, "worker call show: %v\n", timedOut(ctx, err, *timeout))
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
	})
}

// writeTranscript prints a call's conversation for a person. Spoken text
// goes through the logs' redaction, so a number the callee read out is
// masked like one in a log line.
func writeTranscript(w io.Writer, c *store.Call) error {
	var b strings.Builder
	fmt.Fprintf(&b, "call %s: %s", c.ID, c.Status)
	if c.Outcome != "" {
		fmt.Fprintf(&b, " (%s)", c.Outcome)
	}
	if c.Phone != "" {
		fmt.Fprintf(&b, ", %s", logging.MaskPhone(c.Phone))
	}
	b.WriteString("\n")
	if !c.AnsweredAt.IsZero() && !c.EndedAt.IsZero() {
		fmt.Fprintf(&b, "answered %s, ended %s (%s)\n", stamp(c.AnsweredAt), stamp(c.EndedAt), c.EndedAt.Sub(c.AnsweredAt).Round(time.Second))
	}
	if c.Error != "" {
		fmt.Fprintf(&b, "error: %s\n", logging.RedactString(c.Error))
	}
	if len(c.Transcript) == 0 {
		b.WriteString("\n(no transcript: nobody spoke)\n")
	} else {
		b.WriteString("\n")
	}
	for _, t := range c.Transcript {
		fmt.Fprintf(&b, "[%s] %-7s %s\n", offset(t.StartMS), t.Role+":", logging.RedactString(strings.TrimSpace(t.Text)))
	}
	if len(c.ToolCalls) > 0 {
		b.WriteString("\ntools:\n")
	}
	for _, tc := range c.ToolCalls {
		fmt.Fprintf(&b, "  %s %s %s", stamp(tc.At), tc.Name, logging.RedactString(tc.Arguments))
		if tc.Result != "" {
			fmt.Fprintf(&b, " → %s", logging.RedactString(tc.Result))
		}
		b.WriteString("\n")
	}
	if c.Summary != "" {
		fmt.Fprintf(&b, "\nsummary: %s\n", logging.RedactString(c.Summary))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// offset prints milliseconds into the recording as mm:ss.s.
func offset(ms int64) string {
	return fmt.Sprintf("%02d:%04.1f", ms/60000, float64(ms%60000)/1000)
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }
