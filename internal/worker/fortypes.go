package worker

import (
	"context"

	"github.com/hibiken/asynq"
)

// ForTypes is middleware that puts gate in front of the tasks of the given
// types only (the calls, for the admission checks); every other type goes
// straight to the handler. gate decides whether, and how, next runs.
func ForTypes(gate func(ctx context.Context, t *asynq.Task, next asynq.Handler) error, taskTypes ...string) asynq.MiddlewareFunc {
	gated := make(map[string]bool, len(taskTypes))
	for _, t := range taskTypes {
		gated[t] = true
	}
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			if !gated[t.Type()] {
				return next.ProcessTask(ctx, t)
			}
			return gate(ctx, t, next)
		})
	}
}
