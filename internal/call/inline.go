package call

import (
	"context"
	"errors"
	"time"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/worker"
	"github.com/docshield/voice-worker/producer"
	"github.com/docshield/voice-worker/tasks"
	"go.uber.org/zap"
)

// createInline writes the attempt of a raw inline payload, as producers
// do (producer.WriteInline). A repeat is fine; another call under the same
// attempt id is a conflict: logged as `call.conflict` (the fields that
// differ, never their values) and archived, never retried into the same
// conflict. The first call stands.
func createInline(ctx context.Context, calls store.Calls, in *tasks.InlineCall, now time.Time) error {
	err := producer.WriteInline(ctx, calls, in, now)
	var conflict *producer.InlineConflictError
	if errors.As(err, &conflict) {
		logging.FromContext(ctx).Warn("call.conflict", zap.String("attempt_id", in.AttemptID),
			zap.Strings("fields", conflict.Fields), zap.String("status", string(conflict.Status)))
		return worker.Reject(conflict)
	}
	return err
}
