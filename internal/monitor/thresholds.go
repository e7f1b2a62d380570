package monitor

import (
	"errors"
	"fmt"
	"math"

	"go.uber.org/zap"
)

// Severity grades a metric against its thresholds. The zero value means
// "not graded": an informational metric, or one that could not be read.
type Severity int

const (
	SeverityNone Severity = iota
	SeverityOK
	SeverityWarning
	SeverityCritical
)

var severityNames = [...]string{"", "ok", "warning", "critical"}

func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// MarshalText writes the name, so snapshots and JSON output read "warning"
// rather than 2.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a name written by MarshalText.
func (s *Severity) UnmarshalText(b []byte) error {
	for i, n := range severityNames {
		if n == string(b) {
			*s = Severity(i)
			return nil
		}
	}
	return fmt.Errorf("severity: unknown name %q", b)
}

// Threshold is one metric's row of the operations doc's table.
type Threshold struct {
	Warning  float64
	Critical float64
}

// Level grades v with no memory of earlier values: `worker health` uses it.
func (t Threshold) Level(v float64) Severity {
	switch {
	case v >= t.Critical:
		return SeverityCritical
	case v >= t.Warning:
		return SeverityWarning
	default:
		return SeverityOK
	}
}

// at is the value that starts level s.
func (t Threshold) at(s Severity) float64 {
	if s == SeverityCritical {
		return t.Critical
	}
	return t.Warning
}

// graded reports whether the threshold is set; a zero one marks an
// informational metric.
func (t Threshold) graded() bool { return t.Warning > 0 || t.Critical > 0 }

func (t Threshold) validate(name string) error {
	if !(t.Warning > 0) || !(t.Critical >= t.Warning) || math.IsInf(t.Critical, 0) {
		return fmt.Errorf("%s: need 0 < warning <= critical, got warning %g, critical %g", name, t.Warning, t.Critical)
	}
	return nil
}

// Thresholds is the operations doc's table; every value is configurable.
type Thresholds struct {
	CPUPercent       Threshold // process CPU as a percent of the cgroup's CPU limit
	RSSMB            Threshold // resident memory in MB (MiB, as Heroku counts them)
	QueueLength      Threshold // per queue: pending + scheduled + retry
	ErrorRatePercent Threshold // failed / processed over the error-rate window
	// RedisMemoryPercent is Redis's used_memory as a percent of its
	// maxmemory. Under noeviction a full Redis refuses every enqueue, so
	// this alerts well before.
	RedisMemoryPercent Threshold
	// UnservedTasks counts tasks waiting on queues no running worker
	// serves (a missing setting on every worker, or a queue that is none
	// of ours): they will wait forever unless someone acts.
	UnservedTasks Threshold
	// Hysteresis is the fraction of a threshold a value must fall below it
	// before that level clears (0.05: a 70% CPU warning clears under 66.5%).
	// Without it a value hovering at a threshold would alert and resolve
	// every evaluation.
	Hysteresis float64
}

// DefaultThresholds is the operations doc's table.
func DefaultThresholds() Thresholds {
	return Thresholds{
		CPUPercent:       Threshold{Warning: 70, Critical: 85},
		RSSMB:            Threshold{Warning: 450, Critical: 490},
		QueueLength:      Threshold{Warning: 100, Critical: 200},
		ErrorRatePercent: Threshold{Warning: 5, Critical: 10},
		// Redis Cloud emails at 80% of the dataset; the worker warns first.
		RedisMemoryPercent: Threshold{Warning: 60, Critical: 80},
		// One task no worker will ever run is already an incident.
		UnservedTasks: Threshold{Warning: 1, Critical: 1},
		Hysteresis:    0.05,
	}
}

// Validate names every threshold that is out of order or missing.
func (t Thresholds) Validate() error {
	errs := []error{
		t.CPUPercent.validate("cpu threshold"),
		t.RSSMB.validate("memory threshold"),
		t.QueueLength.validate("queue length threshold"),
		t.ErrorRatePercent.validate("error rate threshold"),
		t.RedisMemoryPercent.validate("redis memory threshold"),
		t.UnservedTasks.validate("unserved tasks threshold"),
	}
	if !(t.Hysteresis >= 0 && t.Hysteresis < 1) {
		errs = append(errs, fmt.Errorf("hysteresis: need 0 <= h < 1, got %g", t.Hysteresis))
	}
	return errors.Join(errs...)
}

// Transition is a change of one metric's level, the only thing that is
// logged: steady states say nothing however long they last.
type Transition struct {
	Reading MetricReading // Level is the new level
	From    Severity
}

// Escalated reports a move to a higher level (an alert); otherwise a level
// cleared (resolved).
func (tr Transition) Escalated() bool { return tr.Reading.Level > tr.From }

// Alerts remembers each metric's level between evaluations, so that a
// threshold crossing is reported once and not on every evaluation. It is a
// pure state machine, not safe for concurrent use: the evaluator owns it.
type Alerts struct {
	hysteresis float64
	level      map[string]Severity // by MetricReading.key; absent = ok
}

// NewAlerts starts with every metric at ok.
func NewAlerts(hysteresis float64) *Alerts {
	return &Alerts{hysteresis: hysteresis, level: map[string]Severity{}}
}

// Observe grades r against its own thresholds, remembering the metric's
// previous level so a level clears only once the value is clearly under it
// (see Thresholds.Hysteresis). It returns r with Level set and, when the
// level changed, the transition to report. Readings that carry an error or
// no thresholds are returned as they are and leave the state alone.
func (a *Alerts) Observe(r MetricReading) (MetricReading, *Transition) {
	th := Threshold{Warning: r.Warning, Critical: r.Critical}
	if r.Error != "" || !th.graded() || math.IsNaN(r.Value) {
		return r, nil
	}
	key := r.key()
	prev := max(a.level[key], SeverityOK)
	r.Level = grade(th, r.Value, prev, a.hysteresis)
	if r.Level == prev {
		return r, nil
	}
	a.level[key] = r.Level
	return r, &Transition{Reading: r, From: prev}
}

// grade goes up as soon as v reaches a threshold, and comes down from prev
// only to the highest level whose threshold v has not clearly left.
func grade(th Threshold, v float64, prev Severity, hysteresis float64) Severity {
	up := th.Level(v)
	for l := prev; l > up; l-- {
		if v >= th.at(l)*(1-hysteresis) {
			return l
		}
	}
	return up
}

// logTransition writes the `alert` or `resolved` event. An alert names the
// level reached and its threshold, at warn level for a warning and error
// level for a critical. A resolved event names the level that cleared
// (severity) and the level the metric is at now (level): critical→warning
// resolves the critical, warning→ok resolves the warning.
func logTransition(log *zap.Logger, tr Transition) {
	r := tr.Reading
	fields := []zap.Field{zap.String("metric", r.Name)}
	if r.Scope != "" {
		fields = append(fields, zap.String("scope", r.Scope))
	}
	fields = append(fields, zap.Float64("value", round2(r.Value)), zap.String("unit", r.Unit))
	th := Threshold{Warning: r.Warning, Critical: r.Critical}
	if tr.Escalated() {
		fields = append(fields, zap.Float64("threshold", th.at(r.Level)),
			zap.Stringer("severity", r.Level), zap.Stringer("previous", tr.From))
		if r.Level == SeverityCritical {
			log.Error("alert", fields...)
		} else {
			log.Warn("alert", fields...)
		}
		return
	}
	fields = append(fields, zap.Float64("threshold", th.at(tr.From)),
		zap.Stringer("severity", tr.From), zap.Stringer("level", r.Level))
	log.Info("resolved", fields...)
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }
