package tasks

import (
	"errors"
	"fmt"
	"slices"
)

// Queue names, highest priority first. A queue groups the task types that
// need the same settings, because asynq serves queues, not task types: a
// worker serves only the queues whose every type it can handle, and the
// tasks of the others wait, pending, for a worker that can.
const (
	// QueueCalls holds call:outbound: it needs LiveKit and OpenAI.
	QueueCalls = "calls"
	// QueueDefault holds campaign:dispatch: MongoDB and Redis only.
	QueueDefault = "default"
	// QueueAnalysis holds call:analyze: it needs OpenAI.
	QueueAnalysis = "analysis"
	// QueueLow holds system:probe.
	QueueLow = "low"
)

// Queues maps each queue to its weight for asynq's weighted priority: calls
// are served first most of the time, yet low (periodic upkeep) is never
// starved as it would be with strict priority.
var Queues = map[string]int{QueueCalls: 6, QueueDefault: 3, QueueAnalysis: 2, QueueLow: 1}

// QueueNames lists the queues, highest priority first.
var QueueNames = []string{QueueCalls, QueueDefault, QueueAnalysis, QueueLow}

// maxRetry is each type's retry budget: how many times a failed task is
// retried before it is archived. The worker enforces it whatever MaxRetry
// the producer set. Calls retry little: a retry of a call that failed for
// infrastructure reasons is still the same person's phone.
var maxRetry = map[string]int{
	TypeCallOutbound:     3,
	TypeCampaignDispatch: 5,
	TypeCallAnalyze:      8,
	TypeSystemProbe:      0,
}

// MaxRetry is the retry budget of a task type; 0 for an unknown type.
func MaxRetry(taskType string) int { return maxRetry[taskType] }

// QueueOf is the queue a task type runs on; false for an unknown type.
func QueueOf(taskType string) (string, bool) {
	p, ok := ForType(taskType)
	if !ok {
		return "", false
	}
	return p.Queue(), true
}

// TypesOn lists the task types that run on queue, in Types order.
func TypesOn(queue string) []string {
	var out []string
	for _, typ := range Types {
		if q, _ := QueueOf(typ); q == queue {
			out = append(out, typ)
		}
	}
	return out
}

// Known reports whether queue is one of ours.
func Known(queue string) bool { return slices.Contains(QueueNames, queue) }

// MaxPayloadBytes bounds an accepted payload. An inline call at its
// instruction and variable limits, every character JSON-escaped, is under
// 300 KB; past this, a payload is a producer's mistake, refused at enqueue
// and archived by the worker (and then dropped by the janitor), so it
// cannot fill a Redis that refuses every enqueue once full.
const MaxPayloadBytes = 512 << 10

// ErrPayloadTooLarge refuses a payload over MaxPayloadBytes.
var ErrPayloadTooLarge = errors.New("payload too large")

// CheckPayloadSize refuses a payload larger than MaxPayloadBytes.
func CheckPayloadSize(payload []byte) error {
	if n := len(payload); n > MaxPayloadBytes {
		return fmt.Errorf("%w: %d bytes, at most %d accepted", ErrPayloadTooLarge, n, MaxPayloadBytes)
	}
	return nil
}
