package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

// testEvent is one line of `go test -json` (cmd/test2json).
type testEvent struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output events
}

// tally is what one go test run recorded, for the closing summary.
type tally struct {
	Name           string   `json:"name"`
	ExitCode       int      `json:"exit_code"`
	Passed         int      `json:"passed"`
	Failed         int      `json:"failed"`
	Skipped        int      `json:"skipped"`
	Packages       []string `json:"packages"`        // passed, with tests
	NoTests        []string `json:"no_tests"`        // [no test files]
	FailedPackages []string `json:"failed_packages"` // failed, or failed to build
}

// reporter turns `go test -json` back into plain go test output: package
// result lines always, a test's output only when it fails. Output is
// buffered per test until the test's result is known.
type reporter struct {
	out   io.Writer
	t     tally
	buf   map[string][]string // by package+"\x00"+test
	order map[string][]string // package -> buffered keys, first seen first
}

func newReporter(out io.Writer) *reporter {
	return &reporter{out: out, buf: map[string][]string{}, order: map[string][]string{}}
}

func (r *reporter) line(raw string) {
	var e testEvent
	if !strings.HasPrefix(raw, "{") || json.Unmarshal([]byte(raw), &e) != nil || e.Action == "" {
		fmt.Fprintln(r.out, raw)
		return
	}
	r.event(e)
}

func (r *reporter) event(e testEvent) {
	key := e.Package + "\x00" + e.Test
	switch {
	case e.Action == "build-output":
		fmt.Fprint(r.out, e.Output)
	case e.Action == "output" && e.Test != "":
		if _, seen := r.buf[key]; !seen {
			r.order[e.Package] = append(r.order[e.Package], key)
		}
		r.buf[key] = append(r.buf[key], e.Output)
	case e.Action == "output":
		// Plain go test hides a passing package's bare PASS line.
		if e.Output != "PASS\n" {
			fmt.Fprint(r.out, e.Output)
		}
	case e.Test != "" && (e.Action == "pass" || e.Action == "skip"):
		if e.Action == "pass" {
			r.t.Passed++
		} else {
			r.t.Skipped++
		}
		r.buf[key] = nil
	case e.Test != "" && e.Action == "fail":
		r.t.Failed++
		r.flush(key)
	case e.Action == "pass":
		r.t.Packages = append(r.t.Packages, e.Package)
		r.dropPackage(e.Package, false)
	case e.Action == "skip":
		r.t.NoTests = append(r.t.NoTests, e.Package)
	case e.Action == "fail":
		r.t.FailedPackages = append(r.t.FailedPackages, e.Package)
		// A panic or timeout ends the binary before the running test
		// reports; its output is the evidence.
		r.dropPackage(e.Package, true)
	}
}

func (r *reporter) flush(key string) {
	for _, s := range r.buf[key] {
		fmt.Fprint(r.out, s)
	}
	r.buf[key] = nil
}

func (r *reporter) dropPackage(pkg string, show bool) {
	for _, key := range r.order[pkg] {
		if show {
			r.flush(key)
		}
		delete(r.buf, key)
	}
	delete(r.order, pkg)
}

// finish shows output of tests whose result never came (the stream was cut).
func (r *reporter) finish() {
	for pkg := range r.order {
		r.dropPackage(pkg, true)
	}
}

// runGoTest runs a `go test -json` command (possibly wrapped, e.g. in
// devstack exec), prints its output like plain go test and records a
// tally for `devstack summary`. It exits with the command's code.
func runGoTest(args []string) int {
	fs := flag.NewFlagSet("gotest", flag.ContinueOnError)
	record := fs.String("record", "", "write the tally as JSON to this file")
	name := fs.String("name", "", "name of this run in the summary (default: the record's file name)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprint(os.Stderr, "devstack gotest: missing command after --\n", usage)
		return 2
	}
	argv := fs.Args()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintf(os.Stderr, "devstack gotest: %v\n", err)
		return 1
	}
	// Ctrl-C reaches the child through the terminal's process group; a
	// SIGTERM sent to us alone (make does that) must be passed on.
	signal.Ignore(os.Interrupt)
	terms := make(chan os.Signal, 1)
	signal.Notify(terms, syscall.SIGTERM)
	defer signal.Stop(terms)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "devstack gotest: %v\n", err)
		return 127
	}
	stopForward := make(chan struct{})
	forwardDone := make(chan struct{})
	go func() {
		defer close(forwardDone)
		for {
			select {
			case <-terms:
				_ = cmd.Process.Signal(syscall.SIGTERM)
			case <-stopForward:
				return
			}
		}
	}()

	rep := newReporter(os.Stdout)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		rep.line(sc.Text())
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "devstack gotest: reading output: %v\n", err)
		_, _ = io.Copy(io.Discard, stdout) // let the child finish writing
	}
	rep.finish()
	waitErr := cmd.Wait()
	close(stopForward)
	<-forwardDone

	rep.t.ExitCode = exitCode(cmd, waitErr)
	if rep.t.ExitCode == 0 && len(rep.t.FailedPackages) > 0 {
		rep.t.ExitCode = 1
	}
	if *record != "" {
		rep.t.Name = *name
		if rep.t.Name == "" {
			rep.t.Name = strings.TrimSuffix(filepath.Base(*record), ".json")
		}
		b, _ := json.MarshalIndent(rep.t, "", "  ")
		if err := os.WriteFile(*record, b, 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "devstack gotest: --record: %v\n", err)
			return 1
		}
	}
	return rep.t.ExitCode
}

// stepFlags collects repeated --step name=status flags.
type stepFlags []string

func (s *stepFlags) String() string     { return strings.Join(*s, ",") }
func (s *stepFlags) Set(v string) error { *s = append(*s, v); return nil }

// runSummary prints the closing lines of `make test`: a verdict naming
// what failed, then a count line in the form CI log readers recognise.
func runSummary(args []string) int {
	fs := flag.NewFlagSet("summary", flag.ContinueOnError)
	var steps stepFlags
	fs.Var(&steps, "step", "another step's result as name=ok or name=fail (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var tallies []tally
	var problems []string
	for _, path := range fs.Args() {
		b, err := os.ReadFile(path)
		var t tally
		if err == nil {
			err = json.Unmarshal(b, &t)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s (no record: %v)", path, err))
			continue
		}
		tallies = append(tallies, t)
	}
	line, counts, ok := summarize(tallies, steps, problems)
	fmt.Println(line)
	fmt.Println(counts)
	if !ok {
		return 1
	}
	return 0
}

func summarize(tallies []tally, steps []string, problems []string) (verdict, counts string, ok bool) {
	var total tally
	failures := append([]string(nil), problems...)
	for _, t := range tallies {
		total.Passed += t.Passed
		total.Failed += t.Failed
		total.Skipped += t.Skipped
		total.Packages = append(total.Packages, t.Packages...)
		total.NoTests = append(total.NoTests, t.NoTests...)
		failures = append(failures, t.FailedPackages...)
		if t.ExitCode != 0 && len(t.FailedPackages) == 0 {
			failures = append(failures, fmt.Sprintf("%s (exit %d)", t.Name, t.ExitCode))
		}
	}
	var stepNotes []string
	for _, s := range steps {
		name, status, _ := strings.Cut(s, "=")
		if status == "ok" {
			stepNotes = append(stepNotes, name+" ok")
		} else {
			failures = append(failures, name)
		}
	}
	counts = fmt.Sprintf("tests: %d passed, %d failed, %d skipped", total.Passed, total.Failed, total.Skipped)
	if len(failures) > 0 {
		return "TEST SUMMARY: FAIL: " + strings.Join(failures, ", "), counts, false
	}
	verdict = fmt.Sprintf("TEST SUMMARY: PASS (%d packages, %d without tests", len(total.Packages), len(total.NoTests))
	if len(stepNotes) > 0 {
		verdict += "; " + strings.Join(stepNotes, ", ")
	}
	return verdict + ")", counts, true
}
