// Package queue owns the worker's use of Redis as a job queue: the
// connection settings asynq needs, enqueueing, per-queue statistics and the
// Redis checks an operator runs when jobs stop moving.
package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// ConnOpt turns the Redis settings into asynq's connection options. TLS
// (rediss://) verifies certificates unless InsecureSkipVerify was asked for
// explicitly, which Heroku Redis's self-signed certificates need.
func ConnOpt(c config.Redis) (asynq.RedisClientOpt, error) {
	o, err := redis.ParseURL(c.URL)
	if err != nil {
		// go-redis errors can quote the URL, password included.
		return asynq.RedisClientOpt{}, fmt.Errorf("%s: not a valid Redis URL", c.Source)
	}
	if o.TLSConfig != nil && c.InsecureSkipVerify {
		o.TLSConfig.InsecureSkipVerify = true //nolint:gosec // explicit opt-in for Heroku Redis
	}
	return asynq.RedisClientOpt{
		Network:      o.Network,
		Addr:         o.Addr,
		Username:     o.Username,
		Password:     o.Password,
		DB:           o.DB,
		DialTimeout:  5 * time.Second,
		ReadTimeout:  5 * time.Second,
		WriteTimeout: 5 * time.Second,
		PoolSize:     o.PoolSize,
		TLSConfig:    o.TLSConfig,
	}, nil
}

// DefaultMaxRetry is how often a task type is retried before it is archived.
// Calls retry little: a retry of a call that failed for infrastructure
// reasons is still the same person's phone.
var DefaultMaxRetry = map[string]int{
	tasks.TypeCallOutbound:     3,
	tasks.TypeCampaignDispatch: 5,
	tasks.TypeCallAnalyze:      8,
	tasks.TypeSystemProbe:      0,
}

// Client enqueues tasks.
type Client struct{ c *asynq.Client }

// NewClient connects lazily; the first Enqueue reports a dead Redis.
func NewClient(opt asynq.RedisConnOpt) *Client { return &Client{c: asynq.NewClient(opt)} }

// Close releases the connection pool.
func (c *Client) Close() error { return c.c.Close() }

// Enqueue validates p and enqueues it on its queue with the type's default
// retry budget; opts (TaskID, ProcessIn, ...) come after and win.
func (c *Client) Enqueue(ctx context.Context, p tasks.Payload, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	base := []asynq.Option{asynq.MaxRetry(DefaultMaxRetry[p.TaskType()])}
	t, err := tasks.New(p, append(base, opts...)...)
	if err != nil {
		return nil, err
	}
	info, err := c.c.EnqueueContext(ctx, t)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil, fmt.Errorf("a task with this id is already queued: %w", err)
	}
	return info, err
}

// QueueStats is one queue's counters as an operator reads them.
type QueueStats struct {
	Queue          string        `json:"queue"`
	Pending        int           `json:"pending"`
	Active         int           `json:"active"`
	Scheduled      int           `json:"scheduled"`
	Retry          int           `json:"retry"`
	Archived       int           `json:"archived"`
	Completed      int           `json:"completed"`
	ProcessedToday int           `json:"processed_today"`
	FailedToday    int           `json:"failed_today"`
	ProcessedTotal int           `json:"processed_total"`
	FailedTotal    int           `json:"failed_total"`
	Latency        time.Duration `json:"latency_ns"`
	Paused         bool          `json:"paused"`
}

// Backlog is what the queue-length alert watches: work waiting to run.
func (s QueueStats) Backlog() int { return s.Pending + s.Scheduled + s.Retry }

// Stats reads every known queue. A queue nobody has used yet reads as zeros
// rather than an error, so a fresh deployment looks healthy.
func Stats(ctx context.Context, insp *asynq.Inspector) ([]QueueStats, error) {
	out := make([]QueueStats, 0, len(tasks.QueueNames))
	for _, q := range tasks.QueueNames {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		info, err := insp.GetQueueInfo(q)
		if err != nil {
			if errors.Is(err, asynq.ErrQueueNotFound) || strings.Contains(err.Error(), "does not exist") {
				out = append(out, QueueStats{Queue: q})
				continue
			}
			return nil, fmt.Errorf("queue %s: %w", q, err)
		}
		out = append(out, QueueStats{
			Queue: q, Pending: info.Pending, Active: info.Active, Scheduled: info.Scheduled,
			Retry: info.Retry, Archived: info.Archived, Completed: info.Completed,
			ProcessedToday: info.Processed, FailedToday: info.Failed,
			ProcessedTotal: info.ProcessedTotal, FailedTotal: info.FailedTotal,
			Latency: info.Latency, Paused: info.Paused,
		})
	}
	return out, nil
}
