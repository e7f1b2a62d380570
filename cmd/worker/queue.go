package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/queue"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
)

func cmdQueue(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "queue", "queue stats [--json]")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	if code, done := parse(e, fs, args); done {
		return code
	}
	if fs.NArg() != 1 || fs.Arg(0) != "stats" {
		fs.Usage()
		return 2
	}
	rc, err := config.LoadRedis(e.lookup)
	if err != nil {
		return configError(e, err)
	}
	opt, err := queue.ConnOpt(rc)
	if err != nil {
		return configError(e, err)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	stats, err := queue.Stats(ctx, insp)
	if err != nil {
		fmt.Fprintf(e.stderr, "worker queue stats: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return exitCode(enc.Encode(stats))
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
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
		return 1
	}
	for _, n := range notes {
		fmt.Fprintln(e.stdout, "UNSERVED "+n)
	}
	return 0
}

func exitCode(err error) int {
	if err != nil {
		return 1
	}
	return 0
}
