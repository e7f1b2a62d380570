package tasks

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
)

// Enqueue validates p and enqueues it with c on its queue with its type's
// retries (MaxRetry); opts (asynq.TaskID, asynq.ProcessIn, ...) come after
// and win, except that the worker applies its own retry budget whatever a
// producer sets. A payload over MaxPayloadBytes is refused here, as the
// worker would archive it. An inline call's details go to Redis this way:
// a producer that has the worker's MongoDB uses package producer, which
// writes them there and enqueues only the id.
func Enqueue(ctx context.Context, c *asynq.Client, p Payload, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	base := []asynq.Option{asynq.MaxRetry(MaxRetry(p.TaskType()))}
	t, err := New(p, append(base, opts...)...)
	if err != nil {
		return nil, err
	}
	if err := CheckPayloadSize(t.Payload()); err != nil {
		return nil, fmt.Errorf("%s: %w", p.TaskType(), err)
	}
	info, err := c.EnqueueContext(ctx, t)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil, fmt.Errorf("a task with this id is already queued: %w", err)
	}
	return info, err
}
