package call_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/monitor"
	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/docshield/voice-worker/internal/telephony/calleesim"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/stretchr/testify/require"
)

// The far side of the worker for BenchmarkCallCapacity, in a child process:
// the realtime simulator (the model) and the simulated callees (the phone
// network). Run in the benchmark's own process they would add their Opus
// codecs, VAD and buffers to the very RSS and CPU figures being measured;
// in the child, the benchmark process holds only what a worker dyno holds.
// The child is this test binary run again with capacityNetworkEnv set; it
// answers dials over loopback HTTP and exits when its stdin closes, so it
// never outlives the benchmark.

const (
	capacityNetworkEnv = "CALL_CAPACITY_PHONE_NETWORK"
	// capacitySimProfileEnv names a file for the simulators' CPU profile.
	capacitySimProfileEnv = "CALL_CAPACITY_SIM_CPUPROFILE"
	// capacitySimNice is the simulators' niceness: 10 gives them about a
	// tenth of the worker's weight in the kernel's scheduler.
	capacitySimNice     = 10
	capacitySimNiceEnv  = "CALL_CAPACITY_SIM_NICE"
	capacityReadyPrefix = "capacity-phone-network-ready "
	capacityTurns       = 4 // callee turns per call; with the greeting, a call of about 30 s
	// capacityBargeIn is the callee line that talks over the agent's reply
	// before it, capacityBargeAfter into that reply.
	capacityBargeIn      = 2
	capacityBargeAfter   = time.Second
	capacityDelayMS      = 300
	capacityGreetingMS   = 3000
	capacityReplyMS      = 3500
	capacitySilenceMS    = 500 // the model's VAD silence window (the runner's default)
	capacityVADThreshold = 500 // the realtime simulator's default speech level (RMS)
	capacityNetworkStart = 2 * time.Minute
)

// capacityLines is what the callees say (espeak-ng speech, or tones where
// it is missing). No commas: a pause inside a line would end the turn.
var capacityLines = []string{
	"Hi this is the front desk at Elm Dental.",
	"Sure I can help you with that request.",
	"The date of birth is March third nineteen eighty.",
	"Okay thank you very much and goodbye.",
}

// TestCallCapacityPhoneNetwork is not a test: it is the child process of
// BenchmarkCallCapacity and skips unless started as one.
func TestCallCapacityPhoneNetwork(t *testing.T) {
	if os.Getenv(capacityNetworkEnv) != "1" {
		t.Skip("the phone network of BenchmarkCallCapacity; runs only as its child process")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := telephony.Config{
		URL:       testenv.Get(t, "LIVEKIT_URL"),
		APIKey:    testenv.Get(t, "LIVEKIT_API_KEY"),
		APISecret: testenv.Get(t, "LIVEKIT_API_SECRET"),
		CallerID:  callerID,
	}
	lines, err := capacitySpeech(ctx)
	require.NoError(t, err)

	var agent []realtimesim.AgentTurn
	agent = append(agent, realtimesim.AgentTurn{Text: "Hello, this is Ava from DocShield about a records request.", AudioMS: capacityGreetingMS})
	for range capacityTurns + 2 { // spare turns: a split callee turn must not leave a response empty
		agent = append(agent, realtimesim.AgentTurn{Text: "Thank you. Could you confirm the patient's date of birth for me?", AudioMS: capacityReplyMS})
	}
	sim := realtimesim.New(realtimesim.Script{Agent: agent, Callee: capacityLines, ResponseDelayMS: capacityDelayMS, Paced: true})
	realtimeURL, err := sim.Start("127.0.0.1:0")
	require.NoError(t, err)
	defer func() { require.NoError(t, sim.Close()) }()

	dialer, err := calleesim.NewDialer(cfg, calleesim.DialerOptions{
		Script: func(telephony.DialRequest) calleesim.Script {
			steps := []calleesim.Step{calleesim.WaitForAgentTurn()}
			for i := range capacityTurns {
				if i == capacityBargeIn {
					// The previous step waited for the whole reply; this line
					// waits only for it to start.
					steps[len(steps)-1] = calleesim.WaitForAgentSpeech()
					steps = append(steps, calleesim.Pause(capacityBargeAfter))
				}
				steps = append(steps, calleesim.Say(lines[i%len(lines)]), calleesim.WaitForAgentTurn())
			}
			return calleesim.Script{Steps: append(steps, calleesim.HangUp())}
		},
	})
	require.NoError(t, err)
	ns := &networkServer{dialer: dialer, ctx: ctx, results: map[string]calleeResult{}}
	srv := httptest.NewServer(ns.routes())
	// Stop answering, hang up every callee, then wait for the watchers.
	defer ns.wg.Wait()
	defer dialer.Close()
	defer srv.Close()

	ready, err := json.Marshal(networkAddrs{Dial: srv.URL, Realtime: realtimeURL})
	require.NoError(t, err)
	fmt.Println(capacityReadyPrefix + string(ready))
	_, _ = io.Copy(io.Discard, os.Stdin) // until the benchmark closes it (or dies)
}

// capacitySpeech renders capacityLines with espeak-ng, or falls back to
// tone bursts of a similar length when it is not installed.
func capacitySpeech(ctx context.Context) ([][]int16, error) {
	var out [][]int16
	for _, l := range capacityLines {
		pcm, err := calleesim.Speech(ctx, l, rate)
		if err != nil && !toolsMissing("espeak-ng", "sox") {
			return nil, err
		}
		if err != nil {
			pcm = tone(2200 * time.Millisecond)
		}
		out = append(out, trimQuiet(pcm))
	}
	return out, nil
}

// trimQuiet cuts espeak-ng's leading and trailing silence, so a line's
// stamps (first and last frame sent) are where the model's VAD hears
// speech start and stop, and the heard reply latency is not skewed by it.
func trimQuiet(pcm []int16) []int16 {
	const frame = rate / 50 // 20 ms, the VAD's frame
	loud := func(i int) bool {
		return calleesim.RMS(pcm[i:min(i+frame, len(pcm))]) >= capacityVADThreshold
	}
	from, to := 0, len(pcm)
	for from < to && !loud(from) {
		from += frame
	}
	for to-frame > from && !loud(to-frame) {
		to -= frame
	}
	return pcm[min(from, to):to]
}

func toolsMissing(names ...string) bool {
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			return true
		}
	}
	return false
}

type networkAddrs struct {
	Dial     string `json:"dial"`
	Realtime string `json:"realtime"`
}

type dialReply struct {
	Leg     telephony.CallLeg `json:"leg"`
	Outcome telephony.Outcome `json:"outcome"`
	Error   string            `json:"error,omitempty"`
}

// calleeResult is what one simulated callee heard.
type calleeResult struct {
	Done bool `json:"done"`
	// Err is the script's error: "" when the callee said all its lines and
	// hung up itself.
	Err string `json:"err,omitempty"`
	// ReplyMS: each callee line's end (its last frame sent) to the first
	// agent audio heard after it.
	ReplyMS []float64 `json:"reply_ms"`
	// Continuity is the agent audio received (speech and silence) over
	// the time it was received in: below 1 when the agent's player skipped
	// frames (it jumps ahead rather than drift when it falls behind), so a
	// level whose CPU ran short shows it.
	Continuity float64 `json:"continuity"`
	// GreetingMS: the answer (the callee in the room) to the first agent
	// audio heard. BargeInMS: the start of the line that talked over the
	// agent to the agent's last audio heard; absent when the agent was not
	// talking then.
	GreetingMS float64  `json:"greeting_ms"`
	BargeInMS  *float64 `json:"barge_in_ms,omitempty"`
}

// networkServer is the child's side: dials answered by calleesim, and what
// each callee heard once its script is done. Watchers are owned by wg.
type networkServer struct {
	dialer *calleesim.Dialer
	ctx    context.Context // the child's life: a callee outlives its dial request
	wg     sync.WaitGroup

	mu      sync.Mutex
	results map[string]calleeResult // by room
}

func (s *networkServer) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /dial", s.dial)
	mux.HandleFunc("GET /result", s.result)
	return mux
}

func (s *networkServer) dial(w http.ResponseWriter, r *http.Request) {
	var req telephony.DialRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	leg, err := s.dialer.Dial(s.ctx, req)
	answered := time.Now()
	outcome := telephony.OutcomeOf(err)
	reply := dialReply{Leg: leg, Outcome: outcome}
	if err != nil {
		reply.Error = err.Error()
	} else if c := s.dialer.Call(req.Room); c != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			<-c.Done()
			res := summarizeCallee(c, answered)
			s.mu.Lock()
			s.results[req.Room] = res
			s.mu.Unlock()
		}()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(reply)
}

func (s *networkServer) result(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	res := s.results[r.URL.Query().Get("room")]
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}

func summarizeCallee(c *calleesim.Call, answered time.Time) calleeResult {
	res := calleeResult{Done: true}
	if err := c.Err(); err != nil {
		res.Err = err.Error()
	}
	heard := c.Callee.Heard()
	if fs := heard.Frames(); len(fs) > 1 {
		last := fs[len(fs)-1]
		span := last.At.Sub(fs[0].At).Seconds()
		res.Continuity = float64(last.Pos-fs[0].Pos) / float64(heard.SampleRate()) / span
	}
	spans := heard.Spans(200 * time.Millisecond)
	said := c.Callee.Said()
	for _, u := range said {
		end := u.End.Add(telephony.FrameDuration)
		if s, ok := firstSpanAfter(spans, end); ok {
			res.ReplyMS = append(res.ReplyMS, millis(s.Start.Sub(end)))
		}
	}
	if s, ok := firstSpanAfter(spans, answered); ok {
		res.GreetingMS = millis(s.Start.Sub(answered))
	}
	if len(said) > capacityBargeIn {
		// As BenchmarkCallLatency measures it: the agent's stretch that the
		// line began inside, to its end.
		u := said[capacityBargeIn]
		for _, s := range heard.Spans(100 * time.Millisecond) {
			if s.Start.Before(u.Start) && !s.End.Before(u.Start) {
				ms := millis(s.End.Sub(u.Start))
				res.BargeInMS = &ms
				break
			}
		}
	}
	return res
}

// phoneNetwork is the benchmark's handle on the child process.
type phoneNetwork struct {
	addrs  networkAddrs
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *tailBuffer
	exited chan struct{}
	client *http.Client
	proc   monitor.ProcFS // reads the child's /proc entries
}

// startPhoneNetwork starts the child and waits until it serves. Cleanup
// closes its stdin and waits for it to exit (killing it after a bound).
func startPhoneNetwork(b testing.TB) *phoneNetwork {
	b.Helper()
	exe, err := os.Executable()
	require.NoError(b, err)
	args := []string{"-test.run=^TestCallCapacityPhoneNetwork$", "-test.count=1", "-test.timeout=1h"}
	if p := os.Getenv(capacitySimProfileEnv); p != "" {
		args = append(args, "-test.cpuprofile="+p)
	}
	cmd := exec.Command(exe, args...)
	simNice := capacitySimNice
	if v := os.Getenv(capacitySimNiceEnv); v != "" {
		simNice, err = strconv.Atoi(v)
		require.NoError(b, err, capacitySimNiceEnv)
	}
	if nice, err := exec.LookPath("nice"); err == nil && simNice != 0 {
		// A lower priority than the worker's: on a machine short of CPU the
		// simulators wait, not the worker (see BenchmarkCallCapacity).
		cmd = exec.Command(nice, append([]string{"-n", strconv.Itoa(simNice), exe}, args...)...)
	}
	cmd.Env = append(os.Environ(), capacityNetworkEnv+"=1")
	n := &phoneNetwork{cmd: cmd, stderr: &tailBuffer{max: 64 << 10}, exited: make(chan struct{}),
		client: &http.Client{Timeout: time.Minute}}
	cmd.Stderr = n.stderr
	n.stdin, err = cmd.StdinPipe()
	require.NoError(b, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(b, err)
	require.NoError(b, cmd.Start())
	ready := make(chan networkAddrs, 1)
	go func() { // owned by the child: ends when its stdout closes at exit
		defer close(n.exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), capacityReadyPrefix); ok {
				var a networkAddrs
				if json.Unmarshal([]byte(rest), &a) == nil {
					ready <- a
				}
			}
		}
		_ = cmd.Wait()
	}()
	b.Cleanup(n.stop)
	select {
	case n.addrs = <-ready:
	case <-n.exited:
		b.Fatalf("the phone network exited before it was ready:\n%s", n.stderr)
	case <-time.After(capacityNetworkStart):
		b.Fatalf("the phone network was not ready within %s:\n%s", capacityNetworkStart, n.stderr)
	}
	n.proc = procOf(b, cmd.Process.Pid)
	return n
}

func (n *phoneNetwork) stop() {
	_ = n.stdin.Close()
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
}

// result waits (bounded) for what the callee of room heard.
func (n *phoneNetwork) result(ctx context.Context, room string) (calleeResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.addrs.Dial+"/result?room="+url.QueryEscape(room), nil)
		if err != nil {
			return calleeResult{}, err
		}
		var res calleeResult
		resp, err := n.client.Do(req)
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&res)
			resp.Body.Close()
		}
		if err == nil && res.Done {
			return res, nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return calleeResult{}, fmt.Errorf("callee of %s: no result: %w", room, errors.Join(err, ctx.Err()))
		}
	}
}

// networkDialer is the worker's telephony.Dialer for the benchmark: a dial
// is one loopback HTTP request to the child, about what the SIP dialer's
// request to LiveKit costs.
type networkDialer struct {
	n *phoneNetwork
	// answered is called for each answered dial.
	answered func()
}

var _ telephony.Dialer = (*networkDialer)(nil)

func (d *networkDialer) Dial(ctx context.Context, req telephony.DialRequest) (telephony.CallLeg, error) {
	failed := func(err error) (telephony.CallLeg, error) {
		return telephony.CallLeg{}, &telephony.DialError{Outcome: telephony.Failed, Err: err}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return failed(err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, d.n.addrs.Dial+"/dial", bytes.NewReader(body))
	if err != nil {
		return failed(err)
	}
	resp, err := d.n.client.Do(hreq)
	if err != nil {
		return failed(err)
	}
	defer resp.Body.Close()
	var reply dialReply
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
		return failed(fmt.Errorf("phone network: dial reply (HTTP %d): %w", resp.StatusCode, err))
	}
	if reply.Error != "" {
		return telephony.CallLeg{}, &telephony.DialError{Outcome: reply.Outcome, Err: errors.New(reply.Error)}
	}
	d.answered()
	return reply.Leg, nil
}

func (d *networkDialer) Transfer(context.Context, telephony.CallLeg, telephony.TransferRequest) error {
	return errors.New("phone network: the capacity benchmark does not transfer calls")
}

// hangupCounter tells the benchmark when a call's line goes down.
type hangupCounter struct {
	*telephony.Rooms
	hungUp func()
}

func (r hangupCounter) Hangup(ctx context.Context, leg telephony.CallLeg) error {
	r.hungUp()
	return r.Rooms.Hangup(ctx, leg)
}

// tailBuffer keeps the last max bytes written (the child's stderr).
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// ---- resource readers ----

// procOf points the health package's /proc readers (the ones the worker's
// own monitor uses) at another process: they read <Proc>/self/..., so a
// directory whose "self" links to /proc/<pid> does.
func procOf(b testing.TB, pid int) monitor.ProcFS {
	b.Helper()
	dir := b.TempDir()
	require.NoError(b, os.Symlink("/proc/"+strconv.Itoa(pid), filepath.Join(dir, "self")))
	return monitor.ProcFS{Proc: dir, NumCPU: 1}
}

// peakRSS is VmHWM, the most this process was resident since the last
// resetPeakRSS: unlike sampling, it misses no short spike.
func peakRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("/proc/self/status: no VmHWM line")
}

// resetPeakRSS sets VmHWM back to the current RSS (Linux 4.0+).
func resetPeakRSS() error { return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// machineBusy is the CPU time all processes on the machine have used
// (/proc/stat), to show how busy the shared machine was.
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: first line %q is not the cpu total", line)
	}
	var ticks int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil // USER_HZ = 100
}

// stackProcs finds the local stack's processes: the devstack process this
// benchmark runs under (FerretDB runs inside it) and the servers it
// started (Redis, MinIO, LiveKit, its SIP service, PostgreSQL and its
// backends), so their CPU can be told apart from the worker's, the
// simulators' and other work on the machine. Processes started later are
// not in it: PostgreSQL's backends are opened with the stack. Empty
// outside devstack.
func stackProcs(b testing.TB) []stackServer {
	stat := func(pid int) (comm string, ppid int) {
		raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return "", 0
		}
		s := string(raw)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			return "", 0
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 2 {
			return "", 0
		}
		ppid, _ = strconv.Atoi(f[1])
		return s[open+1 : end], ppid
	}
	var chain []int // this process up to devstack
	pid := os.Getpid()
	for range 16 {
		comm, ppid := stat(pid)
		chain = append(chain, pid)
		if comm == "devstack" || ppid <= 1 {
			break
		}
		pid = ppid
	}
	root := chain[len(chain)-1]
	if comm, _ := stat(root); comm != "devstack" {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	require.NoError(b, err)
	children := map[int][]int{}
	comms := map[int]string{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, ppid := stat(p)
		children[ppid] = append(children[ppid], p)
		comms[p] = comm
	}
	procs := []stackServer{{"devstack", procOf(b, root)}}
	// Every descendant of devstack but this benchmark's own line (go
	// test, this process and its simulators).
	next := children[root]
	for len(next) > 0 {
		p := next[0]
		next = next[1:]
		if slices.Contains(chain, p) {
			continue
		}
		procs = append(procs, stackServer{comms[p], procOf(b, p)})
		next = append(next, children[p]...)
	}
	return procs
}

// fitLine is the least-squares line through (xs, ys).
func fitLine(xs, ys []float64) (slope, intercept float64) {
	var sx, sy, sxx, sxy float64
	n := float64(len(xs))
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	slope = (n*sxy - sx*sy) / (n*sxx - sx*sx)
	return slope, (sy - slope*sx) / n
}
