package health

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// Level grades a verify finding.
type Level string

const (
	LevelOK   Level = "OK"
	LevelWarn Level = "WARN"
	LevelFail Level = "FAIL"
)

// Finding is one line of `worker verify`: what was looked at and what was
// seen, with a hint of what to do when it is not OK.
type Finding struct {
	Target string `json:"target"`
	Item   string `json:"item"`
	Level  Level  `json:"level"`
	Detail string `json:"detail"`
}

// Findings collects findings for one target.
type Findings struct {
	Target string
	List   []Finding
}

func (f *Findings) add(l Level, item, format string, args ...any) {
	f.List = append(f.List, Finding{Target: f.Target, Item: item, Level: l, Detail: fmt.Sprintf(format, args...)})
}

// OK records a passing item.
func (f *Findings) OK(item, format string, args ...any) { f.add(LevelOK, item, format, args...) }

// Warn records an item that works but is not as operations require.
func (f *Findings) Warn(item, format string, args ...any) { f.add(LevelWarn, item, format, args...) }

// Fail records a broken item.
func (f *Findings) Fail(item, format string, args ...any) { f.add(LevelFail, item, format, args...) }

// Failed reports whether any finding is a failure.
func Failed(fs []Finding) bool {
	for _, f := range fs {
		if f.Level == LevelFail {
			return true
		}
	}
	return false
}

// WriteFindings prints findings as a table.
func WriteFindings(w io.Writer, fs []Finding) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tITEM\tSTATUS\tDETAIL")
	for _, f := range fs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Target, f.Item, f.Level, OneLine(f.Detail))
	}
	return tw.Flush()
}

// WriteFindingsJSON prints findings for scripts.
func WriteFindingsJSON(w io.Writer, fs []Finding) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		OK       bool      `json:"ok"`
		Findings []Finding `json:"findings"`
	}{!Failed(fs), fs})
}
