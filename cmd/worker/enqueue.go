package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

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
	c := queue.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	info, err := c.Enqueue(ctx, p, opts...)
	if err != nil {
		fmt.Fprintf(e.stderr, "worker enqueue: %v\n", err)
		return 1
	}
	fmt.Fprintln(e.stdout, info.ID)
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
