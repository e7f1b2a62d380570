package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
)

var workerBin string

// TestMain finds the real binary: the shutdown and config tests must
// exercise the process as Heroku runs it, signals and exit codes included.
// `make test` has built it already (WORKER_BIN); otherwise it is built once
// here, with make build's flags so the build cache serves both.
func TestMain(m *testing.M) {
	if workerBin = os.Getenv("WORKER_BIN"); workerBin != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "worker-bin")
	if err != nil {
		panic(err)
	}
	workerBin = filepath.Join(dir, "worker")
	out, err := exec.Command("go", "build", "-trimpath", "-o", workerBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build worker: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// stackEnv is a full worker environment pointing at the devstack, with a
// private Redis so no other test's worker takes our tasks.
func stackEnv(t *testing.T, redisURL string) map[string]string {
	s3 := testenv.S3(t)
	return map[string]string{
		"APP_ENV":               "development",
		"REDIS_URL":             redisURL,
		"MONGODB_URI":           testenv.MongoURI(t),
		"MONGODB_DATABASE":      testenv.UniqueName(t),
		"AWS_REGION":            s3.Region,
		"AWS_ACCESS_KEY_ID":     s3.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY": s3.SecretAccessKey,
		"S3_BUCKET":             s3.Bucket,
		"S3_ENDPOINT":           s3.Endpoint,
		"WORKER_CONCURRENCY":    "2",
		"SHUTDOWN_TIMEOUT":      "6s",
		// Off but where a test is about it: on a machine CI shares, the
		// worker's threads wait for a CPU as long as they run, and a second
		// call beside a live one would wait 30 s for the neighbours.
		"ADMISSION_CPU_WAIT_RATIO": "0",
	}
}

func binCommand(env map[string]string, args ...string) *exec.Cmd {
	cmd := exec.Command(workerBin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

type result struct {
	code           int
	stdout, stderr string
}

func runBin(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	cmd := binCommand(env, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{code, out.String(), errb.String()}
}

func TestConfigErrorsNamedAllAndNoSecrets(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"APP_ENV":               "prod",
		"REDIS_URL":             "http://:hunter2redis@127.0.0.1:1",
		"MONGODB_URI":           "postgres://admin:hunter2mongo@db/",
		"AWS_ACCESS_KEY_ID":     "AKIAHUNTER2",
		"AWS_SECRET_ACCESS_KEY": "hunter2aws",
		"WORKER_CONCURRENCY":    "0",
	}
	r := runBin(t, env, "run")
	require.Equal(t, 1, r.code)
	for _, v := range []string{"APP_ENV", "REDIS_URL", "MONGODB_URI", "AWS_REGION", "S3_BUCKET", "WORKER_CONCURRENCY"} {
		require.Contains(t, r.stderr, v)
		require.Contains(t, r.stdout, v, "the JSON log line names it too")
	}
	require.Contains(t, r.stdout, `"msg":"config.invalid"`)
	require.NotContains(t, r.stdout+r.stderr, "hunter2")
}

func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"health", "--help"}, {"verify", "--help"},
		{"enqueue", "--help"}, {"queue", "--help"}, {"version", "--help"}} {
		r := runBin(t, nil, args...)
		require.Equal(t, 0, r.code, "%v: %s", args, r.stderr)
		require.Equal(t, 1, strings.Count(r.stdout, "Usage: worker"), "%v: usage once, on stdout", args)
		require.Empty(t, r.stderr, "%v: nothing on stderr", args)
	}
	// `worker help CMD` is `worker CMD --help`.
	require.Equal(t, runBin(t, nil, "health", "--help").stdout, runBin(t, nil, "help", "health").stdout)
	// A mistake: the error and the usage once, on stderr.
	bad := runBin(t, nil, "health", "--bogus")
	require.Equal(t, 2, bad.code)
	require.Contains(t, bad.stderr, "flag provided but not defined: -bogus")
	require.Equal(t, 1, strings.Count(bad.stderr, "Usage: worker health"))
	r := runBin(t, nil, "version")
	require.Equal(t, 0, r.code)
	require.Contains(t, r.stdout, "worker ")
	require.Equal(t, r.stdout, runBin(t, nil, "--version").stdout)
	// `heroku run bin/worker version` under the image's ENTRYPOINT.
	r2 := runBin(t, nil, "bin/worker", "version")
	require.Equal(t, 0, r2.code, r2.stderr)
	require.Equal(t, r.stdout, r2.stdout)
	require.Equal(t, 2, runBin(t, nil, "frobnicate").code)
}

func TestHealthAgainstStackAndStoppedRedis(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	env := stackEnv(t, r.URL())

	res := runBin(t, env, "health")
	require.Equal(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	for _, name := range []string{"redis", "mongodb", "s3"} {
		require.Regexp(t, `(?m)^`+name+`\s+OK\s`, res.stdout)
	}

	res = runBin(t, env, "health", "--json")
	require.Equal(t, 0, res.code)
	var parsed struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		} `json:"checks"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &parsed))
	require.True(t, parsed.OK)
	require.Len(t, parsed.Checks, 3)

	r.Kill()
	res = runBin(t, env, "health")
	require.Equal(t, 1, res.code)
	require.Regexp(t, `(?m)^redis\s+FAIL\s`, res.stdout)
	require.Regexp(t, `(?m)^mongodb\s+OK\s`, res.stdout)
	require.NotContains(t, res.stdout, env["AWS_SECRET_ACCESS_KEY"])
}

func TestVerifyEachTargetNeedsOnlyItsSettings(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	env := map[string]string{"REDIS_URL": r.URL()} // nothing else configured
	res := runBin(t, env, "verify", "redis")
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Regexp(t, `(?m)^redis\s+aof\s+OK`, res.stdout)
	require.Regexp(t, `(?m)^redis\s+maxmemory-policy\s+(OK|WARN)`, res.stdout)

	res = runBin(t, env, "verify", "mongo")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stdout, "MONGODB_URI")

	full := stackEnv(t, r.URL())
	res = runBin(t, full, "verify", "s3")
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Regexp(t, `(?m)^s3\s+versioning\s+OK`, res.stdout)
	require.Regexp(t, `(?m)^s3\s+default encryption\s+OK`, res.stdout)
	require.Regexp(t, `(?m)^s3\s+lifecycle\s+OK`, res.stdout)

	// mongo: indexes are missing until `run` creates them; that is a warning.
	res = runBin(t, full, "verify", "--json", "all")
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Contains(t, res.stdout, `"target": "mongo"`)
}

// verify mongo warns when the pool is smaller than the calls need, and
// the pool follows WORKER_CONCURRENCY when unset.
func TestVerifyMongoWarnsOfASmallPool(t *testing.T) {
	t.Parallel()
	env := stackEnv(t, testenv.StartRedis(t).URL())
	env["WORKER_CONCURRENCY"] = "40"
	env["MONGODB_MAX_POOL_SIZE"] = "20"
	res := runBin(t, env, "verify", "mongo")
	require.Equal(t, 0, res.code, "a warning, not a failure: "+res.stdout+res.stderr)
	require.Regexp(t, `(?m)^mongo\s+pool\s+WARN\s.*MONGODB_MAX_POOL_SIZE=20 is below the 50 connections`, res.stdout)

	delete(env, "MONGODB_MAX_POOL_SIZE")
	res = runBin(t, env, "verify", "mongo")
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Regexp(t, `(?m)^mongo\s+pool\s+OK\s+50 connections`, res.stdout)
}

func TestEnqueueValidatesAndPrintsID(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	env := map[string]string{"REDIS_URL": r.URL()}

	res := runBin(t, env, "enqueue", "--type", tasks.TypeCampaignDispatch, "--payload", `{"campaign_id":"nope"}`)
	require.Equal(t, 2, res.code)
	require.Contains(t, res.stderr, "campaign_id")

	res = runBin(t, env, "enqueue", "--type", tasks.TypeCampaignDispatch,
		"--payload", `{"campaign_id":"65f1c0ffee0000000000abcd"}`, "--task-id", "dispatch-1")
	require.Equal(t, 0, res.code, res.stderr)
	require.Equal(t, "dispatch-1\n", res.stdout)

	file := filepath.Join(t.TempDir(), "task.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"type":"system:probe","payload":{"hold":"1s"}}`), 0o600))
	res = runBin(t, env, "enqueue", "--file", file)
	require.Equal(t, 0, res.code, res.stderr)

	res = runBin(t, env, "queue", "stats", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var stats []struct {
		Queue   string `json:"queue"`
		Pending int    `json:"pending"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &stats))
	got := map[string]int{}
	for _, s := range stats {
		got[s.Queue] = s.Pending
	}
	require.Equal(t, map[string]int{"calls": 0, "default": 1, "analysis": 0, "low": 1}, got)
}

// proc is a running `worker run`.
type proc struct {
	cmd  *exec.Cmd
	out  *testenv.SyncBuffer
	done chan struct{} // closed when the process has exited; err is then set
	err  error
}

// startWorker runs `worker run`; the process is killed when the test ends.
func startWorker(t *testing.T, env map[string]string) *proc {
	t.Helper()
	p := &proc{cmd: binCommand(env, "run"), out: &testenv.SyncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// sigterm sends SIGTERM and waits for the exit, bounded by Heroku's 30 s
// (its SIGKILL point): a hard bound, not a measurement.
func (p *proc) sigterm(t *testing.T) error {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
		return p.err
	case <-time.After(30 * time.Second):
		t.Fatalf("worker still running 30s after SIGTERM; output:\n%s", p.out.String())
		return nil
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond) // polling interval, not synchronisation
	}
}

func TestBinaryProcessesTasksAndArchivesInvalidPayload(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	env := stackEnv(t, r.URL())
	out := startWorker(t, env).out
	client, insp := asynqClients(t, r)

	// (This worker has no LiveKit: it serves default, not calls.)
	bad, err := client.Enqueue(asynq.NewTask(tasks.TypeCampaignDispatch, []byte(`{"campaign_id":"has spaces"}`)),
		asynq.Queue(tasks.QueueDefault), asynq.MaxRetry(3))
	require.NoError(t, err)
	waitFor(t, "invalid dispatch archived", func() bool {
		info, err := insp.GetTaskInfo(tasks.QueueDefault, bad.ID)
		return err == nil && info.State == asynq.TaskStateArchived
	})
	info, err := insp.GetTaskInfo(tasks.QueueDefault, bad.ID)
	require.NoError(t, err)
	require.Contains(t, info.LastErr, "campaign_id: must be")

	good, err := tasks.New(tasks.SystemProbe{})
	require.NoError(t, err)
	gi, err := client.Enqueue(good, asynq.Retention(time.Hour))
	require.NoError(t, err)
	waitFor(t, "probe completed", func() bool {
		info, err := insp.GetTaskInfo(tasks.QueueLow, gi.ID)
		return err == nil && info.State == asynq.TaskStateCompleted
	})
	// The worker logs the task before asynq marks it completed, but its
	// stdout reaches the test through a pipe and a copying goroutine,
	// which may not have caught up yet. The archive was logged before.
	waitFor(t, "probe logged", func() bool { return strings.Contains(out.String(), `"task_id":"`+gi.ID+`"`) })
	require.Contains(t, out.String(), `"msg":"task.archived"`)
}

func TestSIGTERMRequeuesActiveTaskAndExitsZero(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	env := stackEnv(t, r.URL())
	env["SHUTDOWN_TIMEOUT"] = "6s"
	w := startWorker(t, env)
	out := w.out
	client, insp := asynqClients(t, r)

	long, err := tasks.New(tasks.SystemProbe{Hold: tasks.Duration(2 * time.Minute)}, asynq.TaskID("long-probe"))
	require.NoError(t, err)
	_, err = client.Enqueue(long)
	require.NoError(t, err)
	waitFor(t, "probe active", func() bool { return strings.Contains(out.String(), "probe.received") })

	start := time.Now()
	require.NoError(t, w.sigterm(t), "worker must exit 0 after SIGTERM; output:\n%s", out.String())
	t.Logf("exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	require.NotContains(t, out.String(), "worker.shutdown_overrun")

	info, err := insp.GetTaskInfo(tasks.QueueLow, "long-probe")
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStatePending, info.State, "the interrupted task is back in its queue")
}

func TestSIGTERMLetsShortTaskFinish(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	env := stackEnv(t, r.URL())
	env["SHUTDOWN_TIMEOUT"] = "20s"
	w := startWorker(t, env)
	out := w.out
	client, insp := asynqClients(t, r)

	short, err := tasks.New(tasks.SystemProbe{Hold: tasks.Duration(time.Second)}, asynq.TaskID("short-probe"), asynq.Retention(time.Hour))
	require.NoError(t, err)
	_, err = client.Enqueue(short)
	require.NoError(t, err)
	waitFor(t, "probe active", func() bool { return strings.Contains(out.String(), "probe.received") })
	require.NoError(t, w.sigterm(t), out.String())
	info, err := insp.GetTaskInfo(tasks.QueueLow, "short-probe")
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStateCompleted, info.State)
}

// logSink is a loopback LogTail ingest endpoint that keeps every body.
type logSink struct {
	mu     sync.Mutex
	bodies []string
	auth   []string
}

func (s *logSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusNotAcceptable)
			return
		}
		body = zr
	}
	b, _ := io.ReadAll(body)
	s.mu.Lock()
	s.bodies = append(s.bodies, string(b))
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	s.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func (s *logSink) all() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.bodies, "\n")
}

// The real binary, with secrets in its environment, logs to stdout and to
// a LogTail sink; neither sees a secret or a full phone number, even when a
// task payload carries them into an error message.
func TestSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	sink := &logSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()

	env := stackEnv(t, r.URL())
	secrets := map[string]string{
		"LOGTAIL_SOURCE_TOKEN": "lt-token-Zq9secret",
		"OPENAI_API_KEY":       "sk-proj-Secret0penAIkey",
		"LIVEKIT_API_KEY":      "APIkeySecret",
		"LIVEKIT_API_SECRET":   "livekit-secret-value-32-characters!!",
	}
	for k, v := range secrets {
		env[k] = v
	}
	env["LIVEKIT_URL"] = "ws://127.0.0.1:1"
	env["DIALER"] = "sim"
	env["LOGTAIL_INGEST_URL"] = srv.URL
	env["LOG_LEVEL"] = "debug"
	w := startWorker(t, env)

	client, insp := asynqClients(t, r)
	// Validation echoes a bad attempt id; these must be redacted on the way out.
	var ids []string
	for _, bad := range []string{"password=PayloadPassw0rd", "+15551234567"} {
		payload, _ := json.Marshal(map[string]string{"attempt_id": bad})
		info, err := client.Enqueue(asynq.NewTask(tasks.TypeCallOutbound, payload), asynq.Queue(tasks.QueueCalls))
		require.NoError(t, err)
		ids = append(ids, info.ID)
	}
	waitFor(t, "both tasks archived", func() bool {
		for _, id := range ids {
			info, err := insp.GetTaskInfo(tasks.QueueCalls, id)
			if err != nil || info.State != asynq.TaskStateArchived {
				return false
			}
		}
		return true
	})
	require.NoError(t, w.sigterm(t), w.out.String())

	stdout, shipped := w.out.String(), sink.all()
	require.Contains(t, shipped, `"msg":"task.archived"`, "the sink received the worker's lines")
	require.Contains(t, shipped, `"dt":"`)
	require.Contains(t, stdout, "4567", "the masked number keeps its last four digits")
	leaks := append([]string{"PayloadPassw0rd", "5551234567", env["AWS_SECRET_ACCESS_KEY"]}, slices.Collect(maps.Values(secrets))...)
	for _, s := range leaks {
		require.NotContains(t, stdout, s)
		require.NotContains(t, shipped, s)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	require.Equal(t, "Bearer "+secrets["LOGTAIL_SOURCE_TOKEN"], sink.auth[0])
}

func TestVerifyOpenAIAgainstSimulator(t *testing.T) {
	t.Parallel()
	sim := realtimesim.New(realtimesim.Script{}, realtimesim.WithAPIKey("sk-test-key-1"), realtimesim.WithModels("gpt-realtime"))
	base, err := sim.Start("127.0.0.1:0")
	require.NoError(t, err)
	defer sim.Close()

	env := map[string]string{"OPENAI_API_KEY": "sk-test-key-1", "OPENAI_BASE_URL": base}
	res := runBin(t, env, "verify", "openai")
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Regexp(t, `(?m)^openai\s+realtime model\s+OK`, res.stdout)

	env["OPENAI_API_KEY"] = "sk-wrong-key-2"
	res = runBin(t, env, "verify", "openai")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stdout, "OPENAI_API_KEY")
	require.NotContains(t, res.stdout, "sk-wrong-key-2")

	env["OPENAI_API_KEY"], env["OPENAI_REALTIME_MODEL"] = "sk-test-key-1", "gpt-nope"
	res = runBin(t, env, "verify", "openai")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stdout, "OPENAI_REALTIME_MODEL")
}

func TestVerifyLogTail(t *testing.T) {
	t.Parallel()
	status := http.StatusAccepted
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
	}))
	defer srv.Close()
	env := map[string]string{"LOGTAIL_SOURCE_TOKEN": "lt-verify-token", "LOGTAIL_INGEST_URL": srv.URL}
	res := runBin(t, env, "verify", "logtail")
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Regexp(t, `(?m)^logtail\s+ingest\s+OK.*HTTP 202`, res.stdout)

	mu.Lock()
	status = http.StatusForbidden
	mu.Unlock()
	res = runBin(t, env, "verify", "logtail")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stdout, "LOGTAIL_SOURCE_TOKEN")
	require.NotContains(t, res.stdout, "lt-verify-token")

	// Not configured: a failure when asked for, a warning under `all`.
	res = runBin(t, map[string]string{}, "verify", "logtail")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stdout, "LOGTAIL_SOURCE_TOKEN")
}

func TestVerifyLiveKit(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"LIVEKIT_URL":        testenv.Get(t, "LIVEKIT_URL"),
		"LIVEKIT_API_KEY":    testenv.Get(t, "LIVEKIT_API_KEY"),
		"LIVEKIT_API_SECRET": testenv.Get(t, "LIVEKIT_API_SECRET"),
		"DIALER":             "sim",
	}
	res := runBin(t, env, "verify", "livekit")
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Regexp(t, `(?m)^livekit\s+api\s+OK`, res.stdout)

	env["LIVEKIT_API_SECRET"] = "not-the-secret-but-long-enough-0123456789"
	res = runBin(t, env, "verify", "livekit")
	require.Equal(t, 1, res.code)
	require.Regexp(t, `(?m)^livekit\s+api\s+FAIL`, res.stdout)
	require.NotContains(t, res.stdout, "not-the-secret")
}

// asynqClients connects a client and an inspector to r, closed when the
// test ends.
func asynqClients(t *testing.T, r *testenv.Redis) (*asynq.Client, *asynq.Inspector) {
	t.Helper()
	opt := asynq.RedisClientOpt{Addr: r.Addr()}
	client, insp := asynq.NewClient(opt), asynq.NewInspector(opt)
	t.Cleanup(func() {
		_ = client.Close()
		_ = insp.Close()
	})
	return client, insp
}
