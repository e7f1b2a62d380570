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

	"github.com/docshield/voice-worker/internal/call"
	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/queue"
	"github.com/docshield/voice-worker/internal/tasks"
	"github.com/hibiken/asynq"
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
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if co, ok := p.(*tasks.CallOutbound); ok && co.Inline != nil {
		if code := storeInline(ctx, e, co.Inline); code != 0 {
			return code
		}
		// The call's details stay in MongoDB; Redis holds only the id, and
		// the task id is the attempt id so a second enqueue is refused.
		if *taskID == "" {
			*taskID = co.Inline.AttemptID
		}
		p = &tasks.CallOutbound{AttemptID: co.Inline.AttemptID}
	}
	var opts []asynq.Option
	if *taskID != "" {
		opts = append(opts, asynq.TaskID(*taskID))
	}
	if *in > 0 {
		opts = append(opts, asynq.ProcessIn(*in))
	}
	c := queue.NewClient(opt)
	defer c.Close()
	info, err := c.Enqueue(ctx, p, opts...)
	if err != nil {
		fmt.Fprintf(e.stderr, "worker enqueue: %v\n", err)
		if errors.Is(err, tasks.ErrPayloadTooLarge) {
			return 2
		}
		return 1
	}
	fmt.Fprintln(e.stdout, info.ID)
	return 0
}

// storeInline writes an inline call's attempt (phone, instructions,
// variables) to MongoDB, so that no personal data rests in Redis. The same
// call enqueued again finds its attempt; other details under the same id
// are refused.
func storeInline(ctx context.Context, e env, in *tasks.InlineCall) int {
	mc, err := config.LoadMongo(e.lookup)
	if err != nil {
		return configError(e, err)
	}
	st, err := openStore(ctx, mc)
	if err != nil {
		fmt.Fprintf(e.stderr, "worker enqueue: %v\n", err)
		return 1
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = st.Close(cctx)
	}()
	err = call.CreateInline(ctx, st, in, time.Now())
	var conflict *call.InlineConflictError
	switch {
	case errors.As(err, &conflict):
		fmt.Fprintf(e.stderr, "worker enqueue: %v\n", conflict)
		return 2
	case err != nil:
		fmt.Fprintf(e.stderr, "worker enqueue: %v\n", err)
		return 1
	}
	return 0
}

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
