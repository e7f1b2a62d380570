// Package health checks the worker's dependencies: the one-pass checks of
// `worker health` and the deeper findings of `worker verify`.
package health

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Check is one dependency check. Run returns a short detail on success.
type Check struct {
	Name string
	Run  func(ctx context.Context) (detail string, err error)
}

// Result is the outcome of one Check.
type Result struct {
	Name      string  `json:"name"`
	OK        bool    `json:"ok"`
	LatencyMS float64 `json:"latency_ms"`
	Detail    string  `json:"detail,omitempty"`
	Error     string  `json:"error,omitempty"`
}

// RunAll runs the checks concurrently, each bounded by timeout, and returns
// results in the checks' order. A check that does not return in time is a
// failure that says so, never a hang.
func RunAll(ctx context.Context, timeout time.Duration, checks ...Check) []Result {
	out := make([]Result, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = RunOne(ctx, timeout, c)
		}()
	}
	wg.Wait()
	return out
}

// RunOne runs one check, bounded by timeout: a check that hangs reports
// "no answer" rather than hold up the others.
func RunOne(ctx context.Context, timeout time.Duration, c Check) Result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type ret struct {
		detail string
		err    error
	}
	done := make(chan ret, 1) // buffered: a late check must not block forever
	start := time.Now()
	go func() {
		d, err := c.Run(ctx)
		done <- ret{d, err}
	}()
	r := Result{Name: c.Name}
	select {
	case x := <-done:
		r.Detail, r.OK = x.detail, x.err == nil
		if x.err != nil {
			r.Error = x.err.Error()
		}
	case <-ctx.Done():
		r.Error = fmt.Sprintf("no answer within %s", timeout)
	}
	r.LatencyMS = float64(time.Since(start).Microseconds()) / 1000
	return r
}

// AllOK reports whether every result passed.
func AllOK(rs []Result) bool {
	for _, r := range rs {
		if !r.OK {
			return false
		}
	}
	return true
}

// WriteTable prints results for a person.
func WriteTable(w io.Writer, rs []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tLATENCY\tDETAIL")
	for _, r := range rs {
		status, detail := "OK", r.Detail
		if !r.OK {
			status, detail = "FAIL", r.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1fms\t%s\n", r.Name, status, r.LatencyMS, OneLine(detail))
	}
	return tw.Flush()
}

// WriteJSON prints results for scripts.
func WriteJSON(w io.Writer, rs []Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		OK     bool     `json:"ok"`
		Checks []Result `json:"checks"`
	}{AllOK(rs), rs})
}

// OneLine folds s onto one line, for table cells.
func OneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
