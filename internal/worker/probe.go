package worker

import (
	"context"
	"time"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"go.uber.org/zap"
)

// ProbeHandler handles system:probe: it proves a task travels from enqueue
// to a handler, and with a hold it occupies a slot for a while so operators
// (and tests) can watch shutdown requeue an active task.
func ProbeHandler(ctx context.Context, t *asynq.Task) error {
	var p tasks.SystemProbe
	if err := tasks.Unmarshal(t.Payload(), &p); err != nil {
		return Reject(err)
	}
	logging.FromContext(ctx).Info("probe.received", zap.Int64("hold_ms", time.Duration(p.Hold).Milliseconds()))
	if p.Hold == 0 {
		return nil
	}
	timer := time.NewTimer(time.Duration(p.Hold))
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
