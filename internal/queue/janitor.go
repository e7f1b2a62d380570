package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/docshield/voice-worker/internal/periodic"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"go.uber.org/zap"
)

// Reasons the janitor deletes a task, as logged.
const (
	ReasonOversized   = "payload over the accepted size"
	ReasonInline      = "inline call: its payload holds a phone number and variables"
	ReasonTooOld      = "archived longer than the archive keeps tasks"
	ReasonArchiveFull = "archive over its size limit: oldest first"
)

// DefaultJanitorInterval is how often the janitor looks.
const DefaultJanitorInterval = time.Minute

// maxDeletesPerPass bounds one pass (and its log lines); the next pass
// takes the rest.
const maxDeletesPerPass = 1000

// listPageSize keeps a page of archived tasks small in memory: payloads
// written before the size limit existed may be megabytes each.
const listPageSize = 50

// JanitorOptions configure a Janitor; config.Queue holds the limits.
type JanitorOptions struct {
	Inspector *asynq.Inspector
	Logger    *zap.Logger
	Interval  time.Duration // 0: DefaultJanitorInterval
	// ArchiveMaxAge, ArchiveMaxBytes and InlineArchiveMaxAge are the
	// limits of config.Queue.
	ArchiveMaxAge       time.Duration
	ArchiveMaxBytes     int64
	InlineArchiveMaxAge time.Duration
	Now                 func() time.Time // nil: time.Now
}

// Janitor bounds what failed tasks keep in Redis, which asynq does only by
// constants (10,000 archived tasks per queue, 90 days): at 100 MB with
// noeviction, three 10 MB mistakes would hold a quarter of it for three
// months. Each pass deletes, through the Inspector and logging each task:
// archived tasks whose payload is over tasks.MaxPayloadBytes; inline calls
// (personal data) archived longer than InlineArchiveMaxAge, and completed
// ones kept by a producer's Retention at once; archived tasks older than
// ArchiveMaxAge; then the oldest archived tasks until all payloads together
// fit ArchiveMaxBytes. Every worker runs one: the deletes are idempotent.
// One goroutine, started and stopped by its owner, as asynq runs its own
// janitor.
type Janitor struct {
	// Immutable after NewJanitor.
	o    JanitorOptions
	loop *periodic.Loop
}

// NewJanitor fills in defaults.
func NewJanitor(o JanitorOptions) *Janitor {
	if o.Interval <= 0 {
		o.Interval = DefaultJanitorInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	j := &Janitor{o: o}
	j.loop = periodic.New(periodic.Options{Every: o.Interval, Run: j.pass})
	return j
}

// Start runs a pass now and then every interval, until Shutdown.
func (j *Janitor) Start() { j.loop.Start() }

// Shutdown stops the goroutine and waits for a pass in progress.
func (j *Janitor) Shutdown() { j.loop.Shutdown() }

func (j *Janitor) pass(ctx context.Context) {
	if _, err := j.Sweep(ctx); err != nil && ctx.Err() == nil {
		j.o.Logger.Warn("queue.janitor_failed", zap.Error(err))
	}
}

// SweepReport is what one pass deleted.
type SweepReport struct {
	Deleted int
	Bytes   int64
}

// kept is what the janitor remembers of one task between listing and
// deciding: never the payload itself.
type kept struct {
	queue, id, typ, attemptID string
	bytes                     int
	at                        time.Time // archived (or completed) at
	inline                    bool
}

// Sweep runs one pass. It keeps going past a task it cannot delete (it may
// have been run again or deleted meanwhile) and returns the first error of
// reading Redis.
func (j *Janitor) Sweep(ctx context.Context) (SweepReport, error) {
	var rep SweepReport
	queues, err := j.o.Inspector.Queues()
	if err != nil {
		return rep, fmt.Errorf("janitor: list queues: %w", err)
	}
	now := j.o.Now()
	var archived []kept
	for _, q := range queues {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		info, err := j.o.Inspector.GetQueueInfo(q)
		if err != nil {
			return rep, fmt.Errorf("janitor: queue %s: %w", q, err)
		}
		if info.Completed > 0 {
			completed, err := j.list(ctx, q, j.o.Inspector.ListCompletedTasks)
			if err != nil {
				return rep, err
			}
			for _, k := range completed {
				if k.inline {
					j.delete(&rep, k, asynq.TaskStateCompleted, ReasonInline, now)
				}
			}
		}
		if info.Archived > 0 {
			a, err := j.list(ctx, q, j.o.Inspector.ListArchivedTasks)
			if err != nil {
				return rep, err
			}
			archived = append(archived, a...)
		}
	}
	// Oldest first, across queues.
	sort.SliceStable(archived, func(a, b int) bool { return archived[a].at.Before(archived[b].at) })
	var total int64
	left := archived[:0]
	for _, k := range archived {
		switch {
		case k.bytes > tasks.MaxPayloadBytes:
			j.delete(&rep, k, asynq.TaskStateArchived, ReasonOversized, now)
		case k.inline && now.Sub(k.at) > j.o.InlineArchiveMaxAge:
			j.delete(&rep, k, asynq.TaskStateArchived, ReasonInline, now)
		case now.Sub(k.at) > j.o.ArchiveMaxAge:
			j.delete(&rep, k, asynq.TaskStateArchived, ReasonTooOld, now)
		default:
			total += int64(k.bytes)
			left = append(left, k)
		}
	}
	for _, k := range left {
		if total <= j.o.ArchiveMaxBytes {
			break
		}
		if j.delete(&rep, k, asynq.TaskStateArchived, ReasonArchiveFull, now) {
			total -= int64(k.bytes)
		}
	}
	if rep.Deleted > 0 {
		j.o.Logger.Info("queue.janitor", zap.Int("deleted", rep.Deleted), zap.Int64("payload_bytes", rep.Bytes),
			zap.Int64("archive_bytes_left", total))
	}
	return rep, ctx.Err()
}

// list reads every task of one state of queue q, a page at a time, keeping
// only what deciding needs.
func (j *Janitor) list(ctx context.Context, q string, page func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error)) ([]kept, error) {
	var out []kept
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		infos, err := page(q, asynq.Page(n), asynq.PageSize(listPageSize))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("janitor: list %s: %w", q, err)
		}
		for _, ti := range infos {
			at := ti.LastFailedAt // the worker's archiving sets it
			if ti.State == asynq.TaskStateCompleted {
				at = ti.CompletedAt
			}
			if at.IsZero() {
				// Archived by hand (asynq's CLI): the time is unknown, so
				// only the size rules apply to it.
				at = j.o.Now()
			}
			k := kept{queue: q, id: ti.ID, typ: ti.Type, bytes: len(ti.Payload), at: at}
			if k.bytes <= tasks.MaxPayloadBytes { // an oversized one goes anyway: do not parse it
				k.attemptID, k.inline = tasks.AttemptIDOf(ti.Payload), isInline(ti.Type, ti.Payload)
			}
			out = append(out, k)
		}
		if len(infos) < listPageSize {
			return out, nil
		}
	}
}

// delete removes one task and logs it; false when it could not (it was run
// again or deleted meanwhile, or the pass's bound is reached).
func (j *Janitor) delete(rep *SweepReport, k kept, state asynq.TaskState, reason string, now time.Time) bool {
	if rep.Deleted >= maxDeletesPerPass {
		return false
	}
	if err := j.o.Inspector.DeleteTask(k.queue, k.id); err != nil {
		if !errors.Is(err, asynq.ErrTaskNotFound) {
			j.o.Logger.Warn("queue.task_not_deleted", zap.String("queue", k.queue), zap.String("task_id", k.id), zap.Error(err))
		}
		return false
	}
	rep.Deleted++
	rep.Bytes += int64(k.bytes)
	j.o.Logger.Info("queue.task_deleted", zap.String("queue", k.queue), zap.String("task_id", k.id),
		zap.String("task_type", k.typ), zap.String("attempt_id", k.attemptID), zap.String("state", state.String()),
		zap.String("reason", reason), zap.Int("payload_bytes", k.bytes), zap.Duration("age", now.Sub(k.at).Round(time.Second)))
	return true
}

// isInline reports an inline call:outbound payload: the one kind that
// carries personal data (phone, template variables) rather than ids.
func isInline(taskType string, payload []byte) bool {
	if taskType != tasks.TypeCallOutbound {
		return false
	}
	var p struct {
		Inline json.RawMessage `json:"inline"`
	}
	return json.Unmarshal(payload, &p) == nil && len(p.Inline) > 0 && string(p.Inline) != "null"
}
