package monitor

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"
)

// transitionsOf feeds values through one metric's state machine and names
// each transition: "alert:<level>" going up, "resolved:<cleared level>"
// going down, "" when nothing changed.
func transitionsOf(th Threshold, hysteresis float64, values ...float64) (got []string, lv []Severity) {
	a := NewAlerts(hysteresis)
	for _, v := range values {
		r, tr := a.Observe(newReading(MetricCPU, "", v, UnitPercent, th))
		lv = append(lv, r.Level)
		switch {
		case tr == nil:
			got = append(got, "")
		case tr.Escalated():
			got = append(got, "alert:"+tr.Reading.Level.String())
		default:
			got = append(got, "resolved:"+tr.From.String())
		}
	}
	return got, lv
}

func TestAlertsFireAndResolveOnce(t *testing.T) {
	cpu := Threshold{Warning: 70, Critical: 85}
	const ok, warn, crit = SeverityOK, SeverityWarning, SeverityCritical
	cases := []struct {
		name   string
		values []float64
		want   []string
		levels []Severity
	}{
		{"steady ok says nothing", []float64{10, 50, 69.9}, []string{"", "", ""}, []Severity{ok, ok, ok}},
		{"warning fires once while it stays, resolves once",
			[]float64{71, 75, 80, 72, 60, 50},
			[]string{"alert:warning", "", "", "", "resolved:warning", ""},
			[]Severity{warn, warn, warn, warn, ok, ok}},
		{"exactly at the threshold counts", []float64{70, 85}, []string{"alert:warning", "alert:critical"}, []Severity{warn, crit}},
		{"escalation logs again, de-escalation resolves the critical",
			[]float64{75, 90, 95, 75, 40},
			[]string{"alert:warning", "alert:critical", "", "resolved:critical", "resolved:warning"},
			[]Severity{warn, crit, crit, warn, ok}},
		{"a jump straight to critical is one alert, and one resolve",
			[]float64{99, 99, 10},
			[]string{"alert:critical", "", "resolved:critical"},
			[]Severity{crit, crit, ok}},
		{"hovering at the threshold does not flap",
			[]float64{70.5, 69.5, 70.2, 68, 67, 66.4, 71},
			[]string{"alert:warning", "", "", "", "", "resolved:warning", "alert:warning"},
			[]Severity{warn, warn, warn, warn, warn, ok, warn}},
		{"critical clears into warning when under its margin but above warning",
			[]float64{86, 81, 80.7, 70},
			[]string{"alert:critical", "", "resolved:critical", ""},
			[]Severity{crit, crit, warn, warn}},
		{"critical falling far keeps warning while inside the warning margin",
			[]float64{90, 67},
			[]string{"alert:critical", "resolved:critical"},
			[]Severity{crit, warn}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, lv := transitionsOf(cpu, 0.05, c.values...)
			require.Equal(t, c.want, got)
			require.Equal(t, c.levels, lv)
		})
	}
}

func TestAlertsWithoutHysteresisResolveAtTheThreshold(t *testing.T) {
	got, _ := transitionsOf(Threshold{Warning: 100, Critical: 200}, 0, 100, 99, 100)
	require.Equal(t, []string{"alert:warning", "resolved:warning", "alert:warning"}, got)
}

func TestAlertsKeepStatePerMetricAndScope(t *testing.T) {
	a := NewAlerts(0.05)
	q := Threshold{Warning: 100, Critical: 200}
	_, tr := a.Observe(newReading(MetricQueueLength, "calls", 150, UnitTasks, q))
	require.NotNil(t, tr)
	_, tr = a.Observe(newReading(MetricQueueLength, "default", 150, UnitTasks, q))
	require.NotNil(t, tr, "another queue has its own state")
	_, tr = a.Observe(newReading(MetricQueueLength, "calls", 150, UnitTasks, q))
	require.Nil(t, tr)
}

func TestAlertsIgnoreUngradedAndUnreadable(t *testing.T) {
	a := NewAlerts(0)
	th := Threshold{Warning: 70, Critical: 85}
	_, tr := a.Observe(newReading(MetricCPU, "", 90, UnitPercent, th))
	require.NotNil(t, tr)

	// An unreadable metric leaves the state alone: no resolve, no alert.
	r := newReading(MetricCPU, "", 0, UnitPercent, th)
	r.Error = "no /proc"
	r, tr = a.Observe(r)
	require.Nil(t, tr)
	require.Equal(t, SeverityNone, r.Level)
	r, tr = a.Observe(newReading(MetricCPU, "", math.NaN(), UnitPercent, th))
	require.Nil(t, tr)
	require.Equal(t, SeverityNone, r.Level)
	_, tr = a.Observe(newReading(MetricCPU, "", 90, UnitPercent, th))
	require.Nil(t, tr, "still critical from before")

	r, tr = a.Observe(newReading(MetricCgroupMemory, "", 1e6, UnitMB, Threshold{}))
	require.Nil(t, tr)
	require.Equal(t, SeverityNone, r.Level)
}

func TestThresholdsValidate(t *testing.T) {
	require.NoError(t, DefaultThresholds().Validate())
	bad := DefaultThresholds()
	bad.CPUPercent = Threshold{Warning: 90, Critical: 80}
	bad.QueueLength = Threshold{}
	bad.Hysteresis = 1
	err := bad.Validate()
	require.Error(t, err)
	require.ErrorContains(t, err, "cpu threshold")
	require.ErrorContains(t, err, "queue length threshold")
	require.ErrorContains(t, err, "hysteresis")
	require.NotContains(t, err.Error(), "memory threshold")
}

func TestDefaultThresholdsMatchOperationsDoc(t *testing.T) {
	d := DefaultThresholds()
	require.Equal(t, Threshold{70, 85}, d.CPUPercent)
	require.Equal(t, Threshold{450, 490}, d.RSSMB)
	require.Equal(t, Threshold{100, 200}, d.QueueLength)
	require.Equal(t, Threshold{5, 10}, d.ErrorRatePercent)
}

func TestSeverityText(t *testing.T) {
	for _, s := range []Severity{SeverityNone, SeverityOK, SeverityWarning, SeverityCritical} {
		b, err := json.Marshal(s)
		require.NoError(t, err)
		var back Severity
		require.NoError(t, json.Unmarshal(b, &back))
		require.Equal(t, s, back)
	}
	require.Equal(t, `"warning"`, mustJSON(t, SeverityWarning))
	var s Severity
	require.Error(t, s.UnmarshalText([]byte("bad")))
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func TestLogTransitionEvents(t *testing.T) {
	log, logs := observed()
	a := NewAlerts(0)
	th := Threshold{Warning: 100, Critical: 200}
	for _, v := range []float64{150, 250, 150, 10} {
		if _, tr := a.Observe(newReading(MetricQueueLength, "calls", v, UnitTasks, th)); tr != nil {
			logTransition(log, *tr)
		}
	}
	require.Equal(t, []zapcore.Level{zapcore.WarnLevel, zapcore.ErrorLevel}, levels(logs, "alert"))
	alerts := events(logs, "alert")
	require.Equal(t, map[string]any{
		"metric": "queue_length", "scope": "calls", "value": 150.0, "unit": "tasks",
		"threshold": 100.0, "severity": "warning", "previous": "ok",
	}, alerts[0])
	require.Equal(t, 200.0, alerts[1]["threshold"])
	require.Equal(t, "critical", alerts[1]["severity"])

	require.Equal(t, []zapcore.Level{zapcore.InfoLevel, zapcore.InfoLevel}, levels(logs, "resolved"))
	resolved := events(logs, "resolved")
	require.Equal(t, "critical", resolved[0]["severity"])
	require.Equal(t, "warning", resolved[0]["level"])
	require.Equal(t, 200.0, resolved[0]["threshold"])
	require.Equal(t, "warning", resolved[1]["severity"])
	require.Equal(t, "ok", resolved[1]["level"])
}
