package tasks

// Queue names, highest priority first.
const (
	QueueCalls   = "calls"
	QueueDefault = "default"
	QueueLow     = "low"
)

// Queues maps each queue to its weight for asynq's weighted priority: calls
// are served first most of the time, yet low (periodic upkeep) is never
// starved as it would be with strict priority.
var Queues = map[string]int{QueueCalls: 6, QueueDefault: 3, QueueLow: 1}

// QueueNames lists the queues, highest priority first.
var QueueNames = []string{QueueCalls, QueueDefault, QueueLow}
