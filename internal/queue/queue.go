// Package queue owns the worker's use of Redis as a job queue: the
// connection settings asynq needs, enqueueing (validated, under the payload
// size limit, with the type's retry budget), per-queue statistics with the
// workers serving each queue, the Redis checks an operator runs when jobs
// stop moving, and the janitor that bounds what failed tasks keep in Redis.
package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// ConnOpt turns the Redis settings into asynq's connection options. TLS
// (rediss://) verifies certificates, against REDIS_CA_CERT's CA when given
// (a provider's own CA) or the system's, unless InsecureSkipVerify was asked
// for explicitly, which Heroku Redis's self-signed certificates need.
func ConnOpt(c config.Redis) (asynq.RedisClientOpt, error) {
	o, err := redis.ParseURL(c.URL)
	if err != nil {
		// go-redis errors can quote the URL, password included.
		return asynq.RedisClientOpt{}, fmt.Errorf("%s: not a valid Redis URL", c.Source)
	}
	if o.TLSConfig != nil && c.InsecureSkipVerify {
		o.TLSConfig.InsecureSkipVerify = true //nolint:gosec // explicit opt-in for Heroku Redis
	}
	if o.TLSConfig != nil {
		o.TLSConfig.RootCAs = c.RootCAs()
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

// Client enqueues tasks.
type Client struct {
	c    *asynq.Client
	insp *asynq.Inspector // RunArchived's
}

// NewClient connects lazily; the first Enqueue reports a dead Redis.
func NewClient(opt asynq.RedisConnOpt) *Client {
	return &Client{c: asynq.NewClient(opt), insp: asynq.NewInspector(opt)}
}

// Close releases the connection pools.
func (c *Client) Close() error { return errors.Join(c.c.Close(), c.insp.Close()) }

// RunArchived puts task id on queue back to pending if it is archived,
// with the retries it had. ran is false when there is no such task or it
// is in any other state: a task that is there and not archived will run
// (or is running) by itself.
//
// asynq refuses to enqueue a task id whose task exists in any state,
// archived included, so enqueueing again cannot revive an archived task.
func (c *Client) RunArchived(queue, id string) (ran bool, err error) {
	info, err := c.insp.GetTaskInfo(queue, id)
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("queue: task %s on %s: %w", id, queue, err)
	}
	if info.State != asynq.TaskStateArchived {
		return false, nil
	}
	if err := c.insp.RunTask(queue, id); err != nil {
		if errors.Is(err, asynq.ErrTaskNotFound) {
			return false, nil // deleted meanwhile (the janitor, an operator)
		}
		return false, fmt.Errorf("queue: run archived task %s on %s: %w", id, queue, err)
	}
	return true, nil
}

// Enqueue validates p and enqueues it on its queue with the type's retry
// budget (tasks.MaxRetry); opts (TaskID, ProcessIn, ...) come after and win.
func (c *Client) Enqueue(ctx context.Context, p tasks.Payload, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	return tasks.Enqueue(ctx, c.c, p, opts...)
}

// QueueStats is one queue's counters as an operator reads them.
type QueueStats struct {
	Queue string `json:"queue"`
	// Foreign marks a queue that is none of ours (a producer's mistake):
	// no worker will ever serve it.
	Foreign bool `json:"foreign,omitempty"`
	// Servers is how many running worker processes serve the queue, as
	// their asynq heartbeats in Redis say (a stopped one drops out within
	// about 30 s).
	Servers        int           `json:"servers"`
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

// Unserved reports tasks waiting on a queue no running worker serves.
func (s QueueStats) Unserved() bool { return s.Servers == 0 && s.Backlog() > 0 }

// Stats reads our queues and every other queue present in Redis, ours
// first, each with the number of running workers that serve it. A queue of
// ours nobody has used yet reads as zeros rather than an error, so a fresh
// deployment looks healthy.
func Stats(ctx context.Context, insp *asynq.Inspector) ([]QueueStats, error) {
	present, err := insp.Queues()
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	servers, err := insp.Servers()
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	names := append([]string(nil), tasks.QueueNames...)
	sort.Strings(present)
	for _, q := range present {
		if !slices.Contains(names, q) {
			names = append(names, q)
		}
	}
	out := make([]QueueStats, 0, len(names))
	for _, q := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s := QueueStats{Queue: q, Foreign: !tasks.Known(q)}
		for _, srv := range servers {
			if _, ok := srv.Queues[q]; ok {
				s.Servers++
			}
		}
		info, err := insp.GetQueueInfo(q)
		if err != nil {
			if errors.Is(err, asynq.ErrQueueNotFound) || strings.Contains(err.Error(), "does not exist") {
				out = append(out, s)
				continue
			}
			return nil, fmt.Errorf("queue %s: %w", q, err)
		}
		out = append(out, QueueStats{
			Queue: q, Foreign: s.Foreign, Servers: s.Servers,
			Pending: info.Pending, Active: info.Active, Scheduled: info.Scheduled,
			Retry: info.Retry, Archived: info.Archived, Completed: info.Completed,
			ProcessedToday: info.Processed, FailedToday: info.Failed,
			ProcessedTotal: info.ProcessedTotal, FailedTotal: info.FailedTotal,
			Latency: info.Latency, Paused: info.Paused,
		})
	}
	return out, nil
}
