package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/docshield/voice-worker/internal/campaign"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows a long import's progress on stderr, where it does not mix
// with the report on stdout: a bar on a terminal, and otherwise a line at
// each tenth of a phase, which reads well in `heroku run --no-tty` and in
// Better Stack. The bar is progressbar/v3's: it handles the terminal's
// width, redraw throttling, rates and the time left, none of which a
// line-based renderer needs. All methods run on the importing goroutine.
type progress struct {
	w     io.Writer
	mode  string // "bar", "lines" or "none"
	start time.Time

	phase string
	bar   *progressbar.ProgressBar
	step  int64 // lines: the last tenth (or 10,000-row mark) printed
}

// phaseTitles name the import's phases for a person.
var phaseTitles = map[string]string{campaign.PhaseCheck: "checking rows", campaign.PhaseWrite: "writing contacts"}

// progressRenderer makes the renderer for --progress: auto picks a bar
// when w is a terminal, lines otherwise.
func progressRenderer(w io.Writer, mode string) (*progress, error) {
	switch mode {
	case "auto":
		mode = "lines"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			mode = "bar"
		}
	case "bar", "lines", "none":
	default:
		return nil, fmt.Errorf("--progress %q: want auto, bar, lines or none", mode)
	}
	return &progress{w: w, mode: mode, start: time.Now()}, nil
}

// report is campaign.WithProgress's callback.
func (p *progress) report(pr campaign.ImportProgress) {
	if p.phase != pr.Phase {
		p.finish()
		p.phase, p.step = pr.Phase, -1
	}
	switch p.mode {
	case "bar":
		p.drawBar(pr)
	case "lines":
		p.printLine(pr)
	}
}

func (p *progress) drawBar(pr campaign.ImportProgress) {
	if p.bar == nil {
		total := pr.Total
		if total <= 0 {
			total = -1 // a spinner: the size of a pipe is not known
		}
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription("import: "+phaseTitles[pr.Phase]),
			progressbar.OptionShowBytes(pr.Phase == campaign.PhaseCheck),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.w) }),
		)
	}
	_ = p.bar.Set64(pr.Done)
}

// printLine prints at each tenth of a phase of known size, at every
// 10,000 rows of one of unknown size, and when the phase ends.
func (p *progress) printLine(pr campaign.ImportProgress) {
	var step int64
	var what string
	switch {
	case pr.Total > 0:
		step = pr.Done * 10 / pr.Total
		what = fmt.Sprintf("%d%% (%s)", pr.Done*100/pr.Total, amount(pr.Phase, pr.Done, pr.Total))
		if pr.Phase == campaign.PhaseCheck {
			what += fmt.Sprintf(", %d rows", pr.Rows)
		}
	default:
		step = int64(pr.Rows / 10000)
		what = fmt.Sprintf("%d rows", pr.Rows)
	}
	if step <= p.step {
		return
	}
	p.step = step
	fmt.Fprintf(p.w, "import: %s: %s, %s\n", phaseTitles[pr.Phase], what, time.Since(p.start).Round(100*time.Millisecond))
}

func amount(phase string, done, total int64) string {
	if phase == campaign.PhaseCheck {
		return fmt.Sprintf("%.1f of %.1f MB", float64(done)/1e6, float64(total)/1e6)
	}
	return fmt.Sprintf("%d of %d", done, total)
}

// finish ends the current phase's bar.
func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		p.bar = nil
	}
}
