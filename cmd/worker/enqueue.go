package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/queue"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/producer"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// taskFile is the shape of `enqueue --file`: the task type and its payload,
// exactly as the campaign backend would enqueue it.
type taskFile struct {
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

func cmdEnqueue(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "enqueue",
		"enqueue (--type TYPE [--payload JSON] | --file task.json) [--task-id ID] [--in 10m]\n\n"+
			"Types: call:outbound, campaign:dispatch, call:analyze, system:probe.\n"+
			"An inline call is written to MongoDB first (MONGODB_URI) and only its attempt id goes to Redis.\n"+
			`Example: worker enqueue --type campaign:dispatch --payload '{"campaign_id":"65f1c0ffee0000000000abcd"}'`)
	typ := fs.String("type", "", "task type")
	payload := fs.String("payload", "{}", "payload JSON")
	file := fs.String("file", "", `JSON file {"type": ..., "payload": {...}} ("-" for stdin)`)
	taskID := fs.String("task-id", "", "asynq task id (deduplicates: a second enqueue with the same id is refused)")
	in := fs.Duration("in", 0, "process after this delay")
	if code, done := parse(e, fs, args); done {
		return code
	}
	if *file != "" {
		tf, err := readTaskFile(*file)
		if err != nil {
			fmt.Fprintf(e.stderr, "worker enqueue: %v\n", err)
			return 2
		}
		*typ, *payload = tf.Type, string(tf.Payload)
	}
	p, ok := tasks.ForType(*typ)
	if !ok {
		fmt.Fprintf(e.stderr, "worker enqueue: --type %q is not a task type (want one of %v)\n", *typ, tasks.Types)
		return 2
	}
	// The limits the worker applies to any producer's payload, checked on
	// what was given (an inline call's details go to MongoDB, not Redis).
	if err := errors.Join(tasks.CheckPayloadSize([]byte(*payload)), tasks.CheckStrictJSON([]byte(*payload))); err != nil {
		fmt.Fprintf(e.stderr, "worker enqueue: payload: %v\n", err)
		return 2
	}
	if err := tasks.Unmarshal([]byte(*payload), p); err != nil {
		fmt.Fprintf(e.stderr, "worker enqueue: %v\n", err)
		return 2
	}
	rc, err := config.LoadRedis(e.lookup)
	if err != nil {
		return configError(e, err)
	}
	opt, err := queue.ConnOpt(rc)
	if err != nil {
		return configError(e, err)
	}
	var opts []asynq.Option
	if *taskID != "" {
		opts = append(opts, asynq.TaskID(*taskID))
	}
	if *in > 0 {
		opts = append(opts, asynq.ProcessIn(*in))
	}
	q := asynq.NewClient(opt)
	defer q.Close()
	enqueue := func(ctx context.Context, db *mongo.Database) int {
		info, err := producer.New(q, db).Enqueue(ctx, p, opts...)
		var conflict *producer.InlineConflictError
		switch {
		case errors.As(err, &conflict):
			fmt.Fprintf(e.stderr, "worker enqueue: %v\n", conflict)
			return 2
		case errors.Is(err, tasks.ErrPayloadTooLarge):
			fmt.Fprintf(e.stderr, "worker enqueue: %v\n", err)
			return 2
		case err != nil:
			fmt.Fprintf(e.stderr, "worker enqueue: %v\n", err)
			return 1
		}
		fmt.Fprintln(e.stdout, info.ID)
		return 0
	}
	// An inline call's details go to MongoDB, only its id to Redis
	// (producer.Producer), so it needs MongoDB's settings too.
	if co, ok := p.(*tasks.CallOutbound); ok && co.Inline != nil {
		return withStore(ctx, e, enqueueTimeout, func(ctx context.Context, st *store.Store) int { return enqueue(ctx, st.DB()) })
	}
	ctx, cancel := context.WithTimeout(ctx, enqueueTimeout)
	defer cancel()
	return enqueue(ctx, nil)
}

// enqueueTimeout bounds `worker enqueue`.
const enqueueTimeout = 15 * time.Second

func readTaskFile(name string) (taskFile, error) {
	var (
		b   []byte
		err error
	)
	if name == "-" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return taskFile{}, err
	}
	// A key given twice would silently keep the last value (another phone
	// number); anything after the object would be ignored.
	if err := tasks.CheckStrictJSON(b); err != nil {
		return taskFile{}, fmt.Errorf("%s: %w", name, err)
	}
	var tf taskFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tf); err != nil {
		return taskFile{}, fmt.Errorf("%s: want {\"type\": ..., \"payload\": {...}}: %v", name, err)
	}
	if len(tf.Payload) == 0 {
		tf.Payload = json.RawMessage("{}")
	}
	return tf, nil
}
