package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
)

// ArchivedTask is what an operator is shown of an archived (failed, given
// up) task: never its payload. An inline call's holds a phone number and
// the call's variables, and the error can quote the payload, so the error
// is redacted as log lines are.
type ArchivedTask struct {
	Queue     string `json:"queue"`
	ID        string `json:"id"`
	Type      string `json:"type"`
	AttemptID string `json:"attempt_id,omitempty"`
	// Inline marks a call placed with its details in the payload (personal
	// data; the janitor deletes it after QUEUE_ARCHIVE_INLINE_MAX_AGE).
	Inline bool   `json:"inline,omitempty"`
	Error  string `json:"error"`
	// ArchivedAt is when the task last failed, which archived it; zero for
	// a task archived by hand (asynq's CLI).
	ArchivedAt   time.Time `json:"archived_at,omitzero"`
	Retried      int       `json:"retried"`
	PayloadBytes int       `json:"payload_bytes"`
}

// ErrNotArchived is returned for a task that exists but is not archived:
// run and delete act on archived tasks only.
var ErrNotArchived = errors.New("task is not archived")

// ErrNoQueue is returned for a queue Redis does not hold.
var ErrNoQueue = errors.New("no such queue")

// Archived lists the archived tasks of queue, or of every queue when queue
// is "", at most limit of them (0: all), newest first; total is how many
// there are.
func Archived(ctx context.Context, insp *asynq.Inspector, queue string, limit int) (list []ArchivedTask, total int, err error) {
	queues, err := archiveQueues(insp, queue)
	if err != nil {
		return nil, 0, err
	}
	for _, q := range queues {
		for n := 1; ; n++ {
			if err := ctx.Err(); err != nil {
				return nil, 0, err
			}
			infos, err := insp.ListArchivedTasks(q, asynq.Page(n), asynq.PageSize(listPageSize))
			if errors.Is(err, asynq.ErrQueueNotFound) {
				break
			}
			if err != nil {
				return nil, 0, fmt.Errorf("list archived tasks of %s: %w", q, err)
			}
			for _, ti := range infos {
				list = append(list, archivedTask(ti))
			}
			if len(infos) < listPageSize {
				break
			}
		}
	}
	slices.SortStableFunc(list, func(a, b ArchivedTask) int { return b.ArchivedAt.Compare(a.ArchivedAt) })
	total = len(list)
	if limit > 0 && len(list) > limit {
		list = list[:limit]
	}
	return list, total, nil
}

func archivedTask(ti *asynq.TaskInfo) ArchivedTask {
	a := ArchivedTask{Queue: ti.Queue, ID: ti.ID, Type: ti.Type, Error: logging.RedactString(ti.LastErr),
		ArchivedAt: ti.LastFailedAt, Retried: ti.Retried, PayloadBytes: len(ti.Payload)}
	if a.PayloadBytes <= tasks.MaxPayloadBytes { // an oversized payload is not parsed
		a.AttemptID, a.Inline = logging.RedactString(tasks.AttemptIDOf(ti.Payload)), isInline(ti.Type, ti.Payload)
	}
	return a
}

// archiveQueues is queue alone, checked to exist, or every queue for "".
func archiveQueues(insp *asynq.Inspector, queue string) ([]string, error) {
	all, err := insp.Queues()
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	if queue == "" {
		return all, nil
	}
	if !slices.Contains(all, queue) {
		return nil, fmt.Errorf("%w %q in Redis (queues: %v)", ErrNoQueue, queue, all)
	}
	return []string{queue}, nil
}

// RunArchived puts one archived task back on its queue, pending, to be run
// again. A task that is not archived is left alone (ErrNotArchived).
func RunArchived(insp *asynq.Inspector, queue, id string) error {
	return onArchived(insp, queue, id, insp.RunTask)
}

// DeleteArchived deletes one archived task (ErrNotArchived for another).
func DeleteArchived(insp *asynq.Inspector, queue, id string) error {
	return onArchived(insp, queue, id, insp.DeleteTask)
}

// RunAllArchived puts every archived task of queue back, pending.
func RunAllArchived(insp *asynq.Inspector, queue string) (int, error) {
	if _, err := archiveQueues(insp, queue); err != nil {
		return 0, err
	}
	return insp.RunAllArchivedTasks(queue)
}

// DeleteAllArchived deletes every archived task of queue.
func DeleteAllArchived(insp *asynq.Inspector, queue string) (int, error) {
	if _, err := archiveQueues(insp, queue); err != nil {
		return 0, err
	}
	return insp.DeleteAllArchivedTasks(queue)
}

// onArchived applies act to an archived task only: asynq's RunTask and
// DeleteTask act on a task in any state, and an operator cleaning up the
// archive must not delete a pending call.
func onArchived(insp *asynq.Inspector, queue, id string, act func(queue, id string) error) error {
	if _, err := archiveQueues(insp, queue); err != nil {
		return err
	}
	ti, err := insp.GetTaskInfo(queue, id)
	if err != nil {
		return fmt.Errorf("task %s on %s: %w", id, queue, err)
	}
	if ti.State != asynq.TaskStateArchived {
		return fmt.Errorf("task %s on %s is %s: %w", id, queue, ti.State, ErrNotArchived)
	}
	if err := act(queue, id); err != nil {
		return fmt.Errorf("task %s on %s: %w", id, queue, err)
	}
	return nil
}
