// Command worker is DocShield's voice worker: the daemon that runs call
// campaigns, and the operator's tool to check and feed it. `worker help`
// lists the commands (commands below is the list); `worker help CMD` or
// `worker CMD --help` shows one command's flags.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"

	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/logging"
)

func main() {
	// SIGTERM is how Heroku stops a dyno; the daemon turns it into a
	// graceful shutdown, the short commands simply stop.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(Main(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv))
}

// env bundles what every command gets from its surroundings, so tests can
// run commands in-process with their own environment and buffers.
type env struct {
	stdout, stderr io.Writer
	lookup         config.LookupFunc
}

type command struct {
	name, summary string
	run           func(ctx context.Context, e env, args []string) int
}

func commands() []command {
	return []command{
		{"run", "run the worker daemon (default)", cmdRun},
		{"health", "check Redis, MongoDB and S3 once; exit 1 if any fails", cmdHealth},
		{"verify", "deeper checks of one dependency: redis | mongo | s3 | logtail | openai | livekit | sip | fleet | all", cmdVerify},
		{"enqueue", "enqueue a task from flags or a JSON file and print its id", cmdEnqueue},
		{"queue", "queue stats: per-queue counters", cmdQueue},
		{"campaign", "campaigns: import contacts, pause | resume | cancel, stats, check", cmdCampaign},
		{"call", "call show ATTEMPT [--transcript]: the call document as JSON, or the conversation as text", cmdCall},
		{"contact", "contact show PHONE|ID: a number's contacts, attempts and reasons, and when it is called next", cmdContact},
		{"migrate", "create MongoDB indexes and collection validators (the release phase runs it)", cmdMigrate},
		{"recording", "recording url ATTEMPT: a presigned URL (at most 15 min) for a call's recording", cmdRecording},
		{"version", "print the version", cmdVersion},
	}
}

// Main runs one command and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, lookup config.LookupFunc) int {
	e := env{stdout: stdout, stderr: stderr, lookup: lookup}
	// go-redis's own lines (failed dials) go to stderr as plain text,
	// throttled; `run` sends them through its logger instead.
	logging.RouteRedisText(stderr)
	// Under the image's ENTRYPOINT, `heroku run bin/worker health` arrives
	// as `worker bin/worker health`; the Procfile form must work too.
	if len(args) > 0 && filepath.Base(args[0]) == "worker" {
		args = args[1:]
	}
	name := "run"
	if len(args) > 0 {
		name, args = args[0], args[1:]
	}
	switch name {
	case "-h", "--help":
		usage(stdout)
		return 0
	case "help":
		if len(args) == 0 {
			usage(stdout)
			return 0
		}
		// `worker help CMD` is `worker CMD --help`.
		name, args = args[0], []string{"--help"}
	case "-v", "--version":
		name = "version"
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, e, args)
		}
	}
	fmt.Fprintf(stderr, "worker: unknown command %q\n\n", name)
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: worker <command> [flags]\n\nCommands:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\nRun 'worker help <command>' for a command's flags. Settings come from the environment; see README.md.")
}
