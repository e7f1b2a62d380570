package producer_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/producer"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The examples run against real Redis and MongoDB (the devstack's, under
// `make test`): a Redis database of their own, cleared first, and a MongoDB
// database of their own, dropped after.
var (
	redisOpt asynq.RedisClientOpt
	mongoURI string
)

// exampleRedisDB is this package's own Redis database on the stack's server.
const exampleRedisDB = 5

func TestMain(m *testing.M) {
	redisURL, uri := os.Getenv("REDIS_URL"), os.Getenv("MONGODB_URI")
	if redisURL == "" || uri == "" {
		if os.Getenv(testenv.RequireStackVar) == "1" {
			fmt.Fprintln(os.Stderr, "producer: REDIS_URL and MONGODB_URI are required under make test")
			os.Exit(1)
		}
		fmt.Println("producer: no stack (REDIS_URL, MONGODB_URI): examples skipped; run under make test")
		os.Exit(0)
	}
	opt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		panic(err)
	}
	redisOpt = opt.(asynq.RedisClientOpt)
	redisOpt.DB = exampleRedisDB
	mongoURI = uri
	os.Exit(m.Run())
}

// A Go campaign backend enqueues a campaign's dispatch round, and a one-off
// inline call: its details go to the worker's MongoDB, and Redis gets only
// its attempt id. A mistake is refused before anything leaves, naming the
// field.
func Example() {
	ctx := context.Background()
	clearRedis(ctx)

	q := asynq.NewClient(redisOpt)
	defer q.Close()
	mc, err := mongo.Connect(options.Client().ApplyURI(mongoURI))
	if err != nil {
		panic(err)
	}
	db := mc.Database("producer_example")
	defer func() { _ = db.Drop(ctx); _ = mc.Disconnect(ctx) }()

	p := producer.New(q, db)

	info, err := p.Enqueue(ctx, tasks.CampaignDispatch{CampaignID: "65f1c0ffee0000000000abcd"})
	if err != nil {
		panic(err)
	}
	fmt.Println("dispatch:", info.Queue, "queue,", info.MaxRetry, "retries")

	info, err = p.Enqueue(ctx, tasks.CallOutbound{Inline: &tasks.InlineCall{
		AttemptID:    "oneoff-example-0001",
		Phone:        "+14155550100",
		Instructions: "You are calling {{practice_name}} to confirm an appointment.",
		Variables:    map[string]string{"practice_name": "Elm Street Dental", "dob": "1961-04-09"},
	}})
	if err != nil {
		panic(err)
	}
	fmt.Println("inline call:", info.ID, "on", info.Queue)
	fmt.Println("in Redis:", string(info.Payload))
	var attempt struct {
		Phone  string `bson:"phone"`
		Status string `bson:"status"`
	}
	if err := db.Collection("calls").FindOne(ctx, bson.D{{Key: "_id", Value: "oneoff-example-0001"}}).Decode(&attempt); err != nil {
		panic(err)
	}
	fmt.Println("in MongoDB:", attempt.Phone, attempt.Status)

	_, err = p.Enqueue(ctx, tasks.CallOutbound{Inline: &tasks.InlineCall{AttemptID: "oneoff-example-0002", Phone: "4155550100"}})
	fmt.Println("refused:", err)

	// Output:
	// dispatch: default queue, 5 retries
	// inline call: oneoff-example-0001 on calls
	// in Redis: {"attempt_id":"oneoff-example-0001"}
	// in MongoDB: +14155550100 queued
	// refused: invalid payload: inline.phone: must be an E.164 number like +14155550100; inline.instructions: is required
}

func clearRedis(ctx context.Context) {
	rdb := redisOpt.MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		panic(err)
	}
}
