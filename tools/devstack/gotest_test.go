package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func jsonLines(t *testing.T, events ...testEvent) []string {
	t.Helper()
	lines := make([]string, 0, len(events))
	for _, e := range events {
		b, err := json.Marshal(e)
		require.NoError(t, err)
		lines = append(lines, string(b))
	}
	return lines
}

func report(t *testing.T, lines []string) (string, tally) {
	t.Helper()
	var out strings.Builder
	rep := newReporter(&out)
	for _, l := range lines {
		rep.line(l)
	}
	rep.finish()
	return out.String(), rep.t
}

// Output reads like plain go test: passing tests are quiet, failing ones
// show their output, and package result lines always appear.
func TestReporterShowsOnlyFailingTestOutput(t *testing.T) {
	const a, b, c = "example.com/a", "example.com/b", "example.com/c"
	lines := jsonLines(t,
		testEvent{Action: "run", Package: a, Test: "TestOK"},
		testEvent{Action: "output", Package: a, Test: "TestOK", Output: "=== RUN   TestOK\n"},
		testEvent{Action: "output", Package: a, Test: "TestOK", Output: "quiet detail\n"},
		testEvent{Action: "pass", Package: a, Test: "TestOK"},
		testEvent{Action: "output", Package: a, Test: "TestSkip", Output: "skipping: no stack\n"},
		testEvent{Action: "skip", Package: a, Test: "TestSkip"},
		testEvent{Action: "output", Package: a, Output: "PASS\n"},
		testEvent{Action: "output", Package: a, Output: "ok  \texample.com/a\t0.1s\n"},
		testEvent{Action: "pass", Package: a},

		testEvent{Action: "output", Package: b, Test: "TestBad", Output: "    bad_test.go:9: boom\n"},
		testEvent{Action: "output", Package: b, Test: "TestBad", Output: "--- FAIL: TestBad (0.00s)\n"},
		testEvent{Action: "fail", Package: b, Test: "TestBad"},
		testEvent{Action: "output", Package: b, Test: "TestGood", Output: "good detail\n"},
		testEvent{Action: "pass", Package: b, Test: "TestGood"},
		testEvent{Action: "output", Package: b, Output: "FAIL\n"},
		testEvent{Action: "output", Package: b, Output: "FAIL\texample.com/b\t0.2s\n"},
		testEvent{Action: "fail", Package: b},

		testEvent{Action: "output", Package: c, Output: "?   \texample.com/c\t[no test files]\n"},
		testEvent{Action: "skip", Package: c},
	)
	lines = append(lines, "go: some non-JSON line")
	out, tl := report(t, lines)

	require.Contains(t, out, "ok  \texample.com/a\t0.1s\n")
	require.Contains(t, out, "bad_test.go:9: boom\n--- FAIL: TestBad (0.00s)\n")
	require.Contains(t, out, "FAIL\texample.com/b\t0.2s\n")
	require.Contains(t, out, "[no test files]")
	require.Contains(t, out, "go: some non-JSON line\n")
	require.NotContains(t, out, "quiet detail")
	require.NotContains(t, out, "good detail")
	require.NotContains(t, out, "skipping: no stack")
	require.NotContains(t, out, "PASS\n")

	require.Equal(t, 2, tl.Passed)
	require.Equal(t, 1, tl.Failed)
	require.Equal(t, 1, tl.Skipped)
	require.Equal(t, []string{a}, tl.Packages)
	require.Equal(t, []string{b}, tl.FailedPackages)
	require.Equal(t, []string{c}, tl.NoTests)
}

// A panic or timeout kills the test binary before the running test
// reports; its output must still be shown.
func TestReporterShowsOutputOfUnfinishedTestOnPackageFail(t *testing.T) {
	const p = "example.com/p"
	out, tl := report(t, jsonLines(t,
		testEvent{Action: "output", Package: p, Test: "TestHang", Output: "panic: test timed out after 20m0s\n"},
		testEvent{Action: "output", Package: p, Output: "FAIL\texample.com/p\t1200.0s\n"},
		testEvent{Action: "fail", Package: p},
	))
	require.Contains(t, out, "panic: test timed out")
	require.Equal(t, []string{p}, tl.FailedPackages)
}

func TestSummarize(t *testing.T) {
	ok := tally{Name: "worker", Passed: 5, Skipped: 1, Packages: []string{"a", "b"}, NoTests: []string{"c"}}
	dev := tally{Name: "devstack", Passed: 3, Packages: []string{"d"}}

	verdict, counts, pass := summarize([]tally{ok, dev}, []string{"go vet=ok"}, nil)
	require.True(t, pass)
	require.Equal(t, "TEST SUMMARY: PASS (3 packages, 1 without tests; go vet ok)", verdict)
	require.Equal(t, "tests: 8 passed, 0 failed, 1 skipped", counts)

	bad := tally{Name: "worker", Passed: 1, Failed: 2, ExitCode: 1, FailedPackages: []string{"x", "y"}}
	verdict, counts, pass = summarize([]tally{bad, dev}, []string{"go vet=fail"}, nil)
	require.False(t, pass)
	require.Equal(t, "TEST SUMMARY: FAIL: x, y, go vet", verdict)
	require.Equal(t, "tests: 4 passed, 2 failed, 0 skipped", counts)

	// The stack failing to start fails no package but must fail the run.
	noStack := tally{Name: "worker", ExitCode: 1}
	verdict, _, pass = summarize([]tally{noStack}, nil, []string{"missing.json (no record)"})
	require.False(t, pass)
	require.Equal(t, "TEST SUMMARY: FAIL: missing.json (no record), worker (exit 1)", verdict)
}
