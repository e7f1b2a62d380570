package monitor

import (
	"context"
	"testing"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"
)

// countingHandler records how often it ran.
type countingHandler struct{ runs int }

func (h *countingHandler) ProcessTask(context.Context, *asynq.Task) error {
	h.runs++
	return nil
}

func rssReading(mb float64) MetricReading {
	return newReading(MetricRSS, "", mb, UnitMB, DefaultThresholds().RSSMB)
}

func TestPressureMiddlewareDefersGatedTasksOnly(t *testing.T) {
	log, _ := observed()
	p := NewPressure(log)
	h := &countingHandler{}
	mw := p.Middleware(tasks.TypeCallOutbound)(h)
	call := asynq.NewTask(tasks.TypeCallOutbound, []byte(`{"attempt_id":"a1"}`))
	analyze := asynq.NewTask(tasks.TypeCallAnalyze, []byte(`{"attempt_id":"a1"}`))
	ctx := context.Background()

	require.NoError(t, mw.ProcessTask(ctx, call))
	require.Equal(t, 1, h.runs, "no pressure: calls run")

	p.update(true, rssReading(460))
	require.True(t, p.UnderPressure())
	err := mw.ProcessTask(ctx, call)
	require.ErrorIs(t, err, ErrBackpressure)
	require.Equal(t, 1, h.runs, "a deferred call is not run")
	require.NoError(t, mw.ProcessTask(ctx, analyze))
	require.Equal(t, 2, h.runs, "other task types still run")

	p.update(false, rssReading(300))
	require.NoError(t, mw.ProcessTask(ctx, call))
	require.Equal(t, 3, h.runs)
}

func TestPressureLogsOncePerChange(t *testing.T) {
	log, logs := observed()
	p := NewPressure(log)
	for _, s := range []struct {
		on bool
		mb float64
	}{{false, 100}, {true, 455}, {true, 470}, {true, 480}, {false, 400}, {false, 300}, {true, 451}} {
		p.update(s.on, rssReading(s.mb))
	}
	require.Equal(t, []string{"backpressure.on", "backpressure.off", "backpressure.on"}, messages(logs))
	require.Equal(t, []zapcore.Level{zapcore.WarnLevel, zapcore.WarnLevel}, levels(logs, "backpressure.on"))
	on := events(logs, "backpressure.on")[0]
	require.Equal(t, 455.0, on["rss_mb"])
	require.Equal(t, 450.0, on["threshold_mb"])

	// Unknown memory releases the pressure and says why.
	p.update(false, MetricReading{Warning: 450})
	off := events(logs, "backpressure.off")
	require.Len(t, off, 2)
	require.Equal(t, "memory could not be read", off[1]["reason"])
}

// However many tasks are deferred, and however often, the log holds one
// line per change of state, and the line that ends an episode counts them.
func TestPressureCountsDeferralsInsteadOfLoggingThem(t *testing.T) {
	log, logs := observed()
	p := NewPressure(log)
	mw := p.Middleware(tasks.TypeCallOutbound)(&countingHandler{})
	call := asynq.NewTask(tasks.TypeCallOutbound, nil)
	ctx := logging.WithContext(context.Background(), log)

	p.update(true, rssReading(460))
	for range 700 {
		require.ErrorIs(t, mw.ProcessTask(ctx, call), ErrBackpressure)
	}
	p.update(false, rssReading(300))
	require.Equal(t, []string{"backpressure.on", "backpressure.off"}, messages(logs))
	off := events(logs, "backpressure.off")[0]
	require.Equal(t, int64(700), off["deferrals"])
	require.Equal(t, int64(1), off["deferred_tasks"], "one task (no asynq id here), deferred 700 times")

	// A new episode counts from zero.
	p.update(true, rssReading(470))
	require.ErrorIs(t, mw.ProcessTask(ctx, call), ErrBackpressure)
	p.update(false, rssReading(300))
	require.Equal(t, int64(1), events(logs, "backpressure.off")[1]["deferrals"])
}

func TestNilPressureIsNeverOn(t *testing.T) {
	var p *Pressure
	require.False(t, p.UnderPressure())
}
