package producer_test

import (
	"context"
	"errors"
	"testing"

	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/producer"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func inline(id, phone string) tasks.CallOutbound {
	return tasks.CallOutbound{Inline: &tasks.InlineCall{AttemptID: id, Phone: phone, Instructions: "Confirm the appointment."}}
}

// An inline call never goes to Redis with its details: without MongoDB it
// is refused; with it, a repeat is refused by Redis (the attempt id is the
// task id) and another call under the same id by the conflict check.
func TestInlineCallsKeepTheirDetailsOutOfRedis(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	q := asynq.NewClient(asynq.RedisClientOpt{Addr: r.Addr()})
	defer q.Close()

	_, err := producer.New(q, nil).Enqueue(ctx, inline("oneoff-test-0001", "+14155550100"))
	require.ErrorIs(t, err, producer.ErrInlineNeedsMongoDB)

	mc, err := mongo.Connect(options.Client().ApplyURI(mongoURI))
	require.NoError(t, err)
	db := mc.Database(testenv.UniqueName(t))
	t.Cleanup(func() { _ = db.Drop(context.Background()); _ = mc.Disconnect(context.Background()) })
	p := producer.New(q, db)

	info, err := p.Enqueue(ctx, inline("oneoff-test-0001", "+14155550100"))
	require.NoError(t, err)
	require.Equal(t, "oneoff-test-0001", info.ID)
	require.JSONEq(t, `{"attempt_id":"oneoff-test-0001"}`, string(info.Payload))

	_, err = p.Enqueue(ctx, inline("oneoff-test-0001", "+14155550100"))
	require.ErrorIs(t, err, asynq.ErrTaskIDConflict, "the same call again: Redis refuses the id")

	_, err = p.Enqueue(ctx, inline("oneoff-test-0001", "+14155550199"))
	var conflict *producer.InlineConflictError
	require.True(t, errors.As(err, &conflict), "%v", err)
	require.Equal(t, []string{"phone"}, conflict.Fields)
	require.NotContains(t, err.Error(), "5550199", "no number in the error")

	// A payload that is not inline goes as it is, with its type's retries.
	info, err = p.Enqueue(ctx, tasks.CallAnalyze{AttemptID: "oneoff-test-0001"})
	require.NoError(t, err)
	require.Equal(t, tasks.MaxRetry(tasks.TypeCallAnalyze), info.MaxRetry)
	require.Equal(t, tasks.QueueAnalysis, info.Queue)
}
