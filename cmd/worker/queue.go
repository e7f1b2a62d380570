package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/queue"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
)

const queueSynopsis = `queue stats [--json]
       worker queue archived [QUEUE] [--json] [--limit 100]
       worker queue run QUEUE (ID | --all)
       worker queue delete QUEUE (ID | --all)
       worker queue asynq-flags [--asynqmon] [--password]

stats     every queue in Redis: workers serving it, counts by state, latency;
          an UNSERVED line for each queue no running worker serves.
archived  archived (failed, given up) tasks, newest first: queue, id, type,
          attempt id, when archived, retries, payload size and the error.
          Payloads are never printed: an inline call's holds personal data.
run       puts an archived task (or every one of QUEUE) back on its queue to
          be run again; a task in another state is left alone. On the calls
          queue that places the call again.
delete    deletes an archived task (or every one of QUEUE).
asynq-flags
          the flags that point asynq's CLI (or, with --asynqmon, asynqmon) at
          REDIS_URL's server, on stdout: asynq --uri host:port, not a URL.
          The password only with --password (stdout only, never logged).

Exit: 0 done, 1 Redis or no such task, 2 usage.`

func cmdQueue(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "queue", queueSynopsis)
	asJSON := fs.Bool("json", false, "print JSON for scripts (stats, archived)")
	limit := fs.Int("limit", 100, "archived: list at most this many (0: all)")
	all := fs.Bool("all", false, "run, delete: every archived task of QUEUE")
	asynqmon := fs.Bool("asynqmon", false, "asynq-flags: asynqmon's flags instead of asynq's CLI's")
	withPassword := fs.Bool("password", false, "asynq-flags: include the password")
	if code, done := parse(e, fs, args); done {
		return code
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	sub, rest := fs.Arg(0), fs.Args()[1:]
	rc, err := config.LoadRedis(e.lookup)
	if err != nil {
		return configError(e, err)
	}
	if sub == "asynq-flags" && len(rest) == 0 {
		return asynqFlags(e, rc, *asynqmon, *withPassword)
	}
	opt, err := queue.ConnOpt(rc)
	if err != nil {
		return configError(e, err)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	switch {
	case sub == "stats" && len(rest) == 0:
		return queueStats(ctx, e, insp, *asJSON)
	case sub == "archived" && len(rest) <= 1:
		return listArchived(ctx, e, insp, strings.Join(rest, ""), *limit, *asJSON)
	case (sub == "run" || sub == "delete") && (len(rest) == 2 && !*all || len(rest) == 1 && *all):
		return actOnArchived(e, insp, sub, rest, *all)
	}
	fs.Usage()
	return 2
}

func queueStats(ctx context.Context, e env, insp *asynq.Inspector, asJSON bool) int {
	stats, err := queue.Stats(ctx, insp)
	if err != nil {
		fmt.Fprintf(e.stderr, "worker queue stats: %v\n", err)
		return 1
	}
	return exitCode(writeOut(e, asJSON, stats, func(w io.Writer) error { return writeQueueStats(w, stats) }))
}

func writeQueueStats(w io.Writer, stats []queue.QueueStats) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tWORKERS\tPENDING\tACTIVE\tSCHEDULED\tRETRY\tARCHIVED\tPROCESSED TODAY\tFAILED TODAY\tPROCESSED TOTAL\tFAILED TOTAL\tLATENCY\tPAUSED")
	var notes []string
	for _, s := range stats {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%v\n", s.Queue, s.Servers, s.Pending, s.Active,
			s.Scheduled, s.Retry, s.Archived, s.ProcessedToday, s.FailedToday, s.ProcessedTotal, s.FailedTotal,
			s.Latency.Round(1e6), s.Paused)
		switch {
		case s.Foreign:
			notes = append(notes, fmt.Sprintf("%s: not one of the worker's queues (%s); no worker will ever serve it: %d tasks wait",
				s.Queue, strings.Join(tasks.QueueNames, ", "), s.Backlog()))
		case s.Servers == 0:
			notes = append(notes, fmt.Sprintf("%s: no running worker serves it (%s): %d tasks wait",
				s.Queue, strings.Join(tasks.TypesOn(s.Queue), ", "), s.Backlog()))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range notes {
		fmt.Fprintln(w, "UNSERVED "+n)
	}
	return nil
}

func listArchived(ctx context.Context, e env, insp *asynq.Inspector, q string, limit int, asJSON bool) int {
	list, total, err := queue.Archived(ctx, insp, q, limit)
	if err != nil {
		fmt.Fprintf(e.stderr, "worker queue archived: %v\n", err)
		return 1
	}
	return exitCode(writeOut(e, asJSON, list, func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "QUEUE\tID\tTYPE\tATTEMPT\tARCHIVED AT\tRETRIED\tSIZE\tERROR")
		for _, a := range list {
			at := "-"
			if !a.ArchivedAt.IsZero() {
				at = a.ArchivedAt.UTC().Format("2006-01-02 15:04:05Z")
			}
			typ := a.Type
			if a.Inline {
				typ += " (inline)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d B\t%s\n", a.Queue, a.ID, typ, orDash(a.AttemptID), at, a.Retried,
				a.PayloadBytes, oneLine(a.Error, 160))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if total > len(list) {
			fmt.Fprintf(w, "%d of %d archived tasks shown; --limit 0 for all\n", len(list), total)
		}
		return nil
	}))
}

func actOnArchived(e env, insp *asynq.Inspector, verb string, rest []string, all bool) int {
	q := rest[0]
	var n int
	var err error
	switch {
	case all && verb == "run":
		n, err = queue.RunAllArchived(insp, q)
	case all:
		n, err = queue.DeleteAllArchived(insp, q)
	case verb == "run":
		err, n = queue.RunArchived(insp, q, rest[1]), 1
	default:
		err, n = queue.DeleteArchived(insp, q, rest[1]), 1
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "worker queue %s: %v\n", verb, err)
		return 1
	}
	done := map[string]string{"run": "put back on %s to run again", "delete": "deleted from %s"}[verb]
	fmt.Fprintf(e.stdout, "%d archived task(s) "+done+"\n", n, q)
	return 0
}

// oneLine keeps a table cell on one line and at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

func exitCode(err error) int {
	if err != nil {
		return 1
	}
	return 0
}
