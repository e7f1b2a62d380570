package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/monitor"
	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/telephony/calleesim"
	"github.com/docshield/voice-worker/internal/telephony/sipphone"
	"github.com/docshield/voice-worker/internal/telephony/sipphone/siptest"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
)

// The hog test's shape.
const (
	hogLiveCalls   = 2
	hogNewCalls    = 2
	hogLines       = 14 // callee lines per live call, each answered by the agent
	hogPerCPU      = 8  // busy-loop processes per core
	hogRepliesLive = 2  // replies each live call must hear before the hog, and under it
	// admissionInterval is the look's interval: a look judges 100 of the
	// probe's frames, so one frame late by chance is 1%, under the 2% level.
	admissionInterval = "2s"
)

var hogLineTexts = []string{
	"Hello this is the front desk.",
	"Yes we have the request here.",
	"The patient is Jordan Smith.",
	"Her date of birth is March third.",
	"We can send the records today.",
	"By fax or by secure email.",
	"Secure email works best for us.",
}

// Issue 14, "never take a call the dyno cannot serve well": the real
// binary places two long calls over LiveKit SIP to a phone that talks a
// line per turn; busy-loop processes then saturate every core. The worker
// must defer the calls queued under the hog (not dialled, no retry spent,
// the reason named), the live calls must go on (every callee line
// answered, both completed), and once the hog stops and the pressure
// clears, the deferred calls are placed. Reply latency as the phone heard
// it, before and under the hog, is logged with the load average and the
// worker's own CPU: the test asserts no speed (the machine is shared),
// only that no reply went missing.
//
// A neighbour's hog does not raise the worker's own CPU (it lowers it: the
// worker gets less of a core): what it does is make the worker's threads
// wait for a core, which the admission duty reads from the kernel's run
// queue (cpu_wait), and, once that delays its pacing probe's frames past
// 100 ms, as audio lateness. So the reason here is cpu_wait or audio; the
// CPU reason has a test of its own below.
//
// Not parallel: the hog must not slow the package's other tests, nor
// theirs hide it.
//
// Opt-in (DOCSHIELD_HOG_TEST=1, or `make test-hog`): it saturates every
// core on purpose, which would starve the packages `make test` runs beside
// it, and it needs a machine that is not saturated already before its hog
// starts. On the development machine (2 cores, otherwise quiet) the
// pressure came on 0.8 s after the hog started, on cpu_wait: the worker's
// threads waited 11-16 times as long as they ran, against about 1 before.
// It used to time out here: cpu_wait's old levels (on at 1, off under 0.5)
// sat on a quiet machine's own readings (0.9-1.3), so the reason came on
// as the live calls started and never lifted, and the hog only began once
// the live calls had ended.
func TestCPUHogDefersNewCallsWhileLiveCallsHold(t *testing.T) {
	if os.Getenv("DOCSHIELD_HOG_TEST") != "1" {
		t.Skip("opt-in: DOCSHIELD_HOG_TEST=1 (make test-hog); see the comment")
	}
	rig := startAdmissionRig(t, hogLines, hogNewCalls, map[string]string{
		"WORKER_CONCURRENCY": fmt.Sprint(hogLiveCalls + hogNewCalls),
		// The default level; stackEnv turns it off.
		"ADMISSION_CPU_WAIT_RATIO": fmt.Sprint(monitor.DefaultWaitRatio),
		// Each look's run-queue reading, shown if the test fails.
		"LOG_LEVEL": "debug",
	})
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for l := range strings.Lines(rig.w.out.String()) {
			if strings.Contains(l, `"admission.run_queue"`) || strings.Contains(l, `"backpressure.`) {
				t.Log(strings.TrimSpace(l))
			}
		}
	})
	liveIDs, newIDs := callIDs("hog-live", hogLiveCalls), callIDs("hog-new", hogNewCalls)
	cpuStart := ownCPU(t, rig.w)
	live := rig.placeLive(t, liveIDs)
	waitUntil(t, "each live call heard its first replies", 2*time.Minute, func() bool {
		return minReplies(live, time.Time{}) >= hogRepliesLive
	})
	loadBefore := loadAverage()
	// Start from no pressure, so that the pressure seen next is the hog's
	// doing (a loaded machine may defer by itself now and then).
	waitUntil(t, "no pressure before the hog", time.Minute, func() bool {
		return len(pressureReasons(rig.w.out.String())) == 0
	})
	cpuBefore := ownCPU(t, rig.w)

	hogStart := time.Now()
	stopHogs := startHogs(t, hogPerCPU*runtime.NumCPU())
	waitUntil(t, "the worker under cpu_wait or audio pressure", time.Minute, func() bool {
		r := pressureReasons(rig.w.out.String())
		return r[monitorCPUWait] || r[monitorAudio]
	})
	pressureOn := time.Since(hogStart)
	rig.deferNew(t, newIDs, `worker is under .*(cpu_wait|audio).* pressure: task deferred, not run`)

	waitUntil(t, "each live call heard replies under the hog", 2*time.Minute, func() bool {
		return minReplies(live, hogStart) >= hogRepliesLive
	})
	require.Empty(t, callsTo(rig.phone, rig.newNumbers...), "no deferred call was dialled while the hog ran")
	loadHog := loadAverage()
	cpuHog := ownCPU(t, rig.w)
	stopHogs()
	hogStop := time.Now()

	// Hysteresis: the reason lifts after good looks in a row; the deferred
	// calls come back one BackpressureRetryAfter after their deferral.
	waitUntil(t, "the pressure lifted", time.Minute, func() bool {
		return len(pressureReasons(rig.w.out.String())) == 0
	})
	pressureOff := time.Since(hogStop)
	rig.waitPlaced(t, newIDs, hogStop)
	rig.finish(t, liveIDs, newIDs)

	var before, under, after []float64
	for i, c := range live {
		waitDone(t, c)
		rep := replies(c)
		require.Len(t, rep, hogLines, "live call %d: every callee line was answered", i+1)
		for _, r := range rep {
			ms := float64(r.latency.Microseconds()) / 1000
			switch {
			case r.said.Before(hogStart):
				before = append(before, ms)
			case r.said.Before(hogStop):
				under = append(under, ms)
			default:
				after = append(after, ms)
			}
		}
	}
	t.Logf("pressure on %s after the hog started (%d busy loops on %d cores), off %s after it stopped",
		pressureOn.Round(time.Millisecond), hogPerCPU*runtime.NumCPU(), runtime.NumCPU(), pressureOff.Round(time.Millisecond))
	t.Logf("the worker's own CPU, of %d cores: %.1f%% with its live calls before the hog, %.1f%% under it",
		runtime.NumCPU(), cpuBefore.pctSince(cpuStart), cpuHog.pctSince(cpuBefore))
	t.Logf("reply latency heard by the phone, ms: before the hog %s (load %s); under it %s (load %s); after %s",
		latencySummary(before), loadBefore, latencySummary(under), loadHog, latencySummary(after))
	rig.logPressure(t)
}

// The CPU reason end to end, with the worker's real /proc figures: its
// warning level (ALERT_CPU_WARN_PCT) set between what it uses idle and
// with two calls, its live calls take it over, the call queued then is
// deferred naming cpu, and it is placed once the live calls have ended
// and the CPU has stayed under the level (less the hysteresis) for two
// looks.
func TestOwnCPUOverWarningDefersNewCalls(t *testing.T) {
	// Parallel: the worker's own CPU is what is measured, and two calls
	// take it over the level on a busy machine too (it passes under make
	// test-busy); as a serial test it held the package's others back.
	t.Parallel()
	rig := startAdmissionRig(t, cpuLines, 1, map[string]string{
		"WORKER_CONCURRENCY": fmt.Sprint(cpuLiveCalls + 1),
		"ALERT_CPU_WARN_PCT": fmt.Sprint(cpuWarnPct),
		// Looks over 5 s: a clock tick (10 ms) of CPU is 0.1% of two
		// cores, not 0.25%, and a quiet moment of the calls is smoothed.
		"ADMISSION_INTERVAL": "5s",
	})
	liveIDs, newIDs := callIDs("cpu-live", cpuLiveCalls), callIDs("cpu-new", 1)
	cpuIdle := ownCPU(t, rig.w)
	live := rig.placeLive(t, liveIDs)
	waitUntil(t, "the worker under cpu pressure", time.Minute, func() bool {
		return pressureReasons(rig.w.out.String())[monitorCPU]
	})
	cpuCall := ownCPU(t, rig.w)
	rig.deferNew(t, newIDs, `worker is under (audio and )?cpu pressure: task deferred, not run`)
	for _, c := range live {
		waitDone(t, c)
	}
	ended := time.Now()
	cpuEnd := ownCPU(t, rig.w)
	waitUntil(t, "the cpu pressure lifted", time.Minute, func() bool {
		return !pressureReasons(rig.w.out.String())[monitorCPU]
	})
	off := time.Since(ended)
	rig.waitPlaced(t, newIDs, ended)
	rig.finish(t, liveIDs, newIDs)
	for i, c := range live {
		require.Len(t, replies(c), cpuLines, "live call %d: every callee line was answered", i+1)
	}
	t.Logf("the worker's own CPU, of %d cores: %.2f%% from start to the live calls' answer, %.2f%% while they ran (warning level %d%%); cpu pressure off %s after they ended; load %s",
		runtime.NumCPU(), cpuCall.pctSince(cpuIdle), cpuEnd.pctSince(cpuCall), cpuWarnPct, off.Round(time.Millisecond), loadAverage())
	rig.logPressure(t)
}

const (
	cpuLines     = 5
	cpuLiveCalls = 2
	// cpuWarnPct is of all cores, between an idle worker (about 1% of two
	// cores here) and one with two calls (about 5%).
	cpuWarnPct = 3
)

// admissionRig is a worker placing calls over LiveKit SIP to a phone, with
// the Realtime simulator as the agent. Calls to liveNumber talk for the
// given number of lines (the agent answers each and ends the call after
// the last); calls to newNumbers hear the greeting and hang up: placing
// them is what counts.
type admissionRig struct {
	w          *proc
	client     *asynq.Client
	insp       *asynq.Inspector
	st         *store.Store
	phone      *sipphone.Phone
	liveNumber string
	newNumbers []string
}

func startAdmissionRig(t *testing.T, lines, newCalls int, extra map[string]string) *admissionRig {
	t.Helper()
	speech := hogSpeech(t)
	agent := []realtimesim.AgentTurn{{Text: "Hello, this is Ava from DocShield about a records request.", AudioMS: 1500}}
	var said []string
	talk := sipphone.Script{}
	for i := range lines {
		turn := realtimesim.AgentTurn{Text: "Thank you, noted.", AudioMS: 1200}
		if i == lines-1 {
			turn = realtimesim.AgentTurn{Text: "Thank you, goodbye.", AudioMS: 1200,
				Tool: &realtimesim.ToolCall{Name: "end_call", Arguments: json.RawMessage(`{"reason":"records request handled"}`)}}
		}
		agent = append(agent, turn)
		said = append(said, hogLineTexts[i%len(hogLineTexts)])
		talk.Steps = append(talk.Steps, sipphone.WaitForAgentTurn(), sipphone.Say(speech[i%len(speech)]))
	}
	line := siptest.Start(t, sipphone.Config{Default: talk})
	rig := &admissionRig{phone: line.Phone, liveNumber: testenv.DaytimeNumber(t)}
	for i := range newCalls {
		n := siblingNumber(rig.liveNumber, i)
		require.NoError(t, line.Phone.Handle(n, sipphone.Script{Steps: []sipphone.Step{sipphone.WaitForAgentTurn(), sipphone.HangUp()}}))
		rig.newNumbers = append(rig.newNumbers, n)
	}

	r := testenv.StartRedis(t)
	env := callEnv(t, r, realtimesim.Script{Agent: agent, Callee: said, ResponseDelayMS: 200, Paced: true})
	env["DIALER"] = "sip" // over LiveKit SIP to the phone, which measures the replies
	env["LIVEKIT_SIP_TRUNK_ID"] = line.Trunk.ID
	env["ADMISSION_INTERVAL"] = admissionInterval
	env["SHUTDOWN_TIMEOUT"] = "20s"
	maps.Copy(env, extra)
	rig.w = startWorker(t, env)
	rig.client, rig.insp = asynqClients(t, r)
	rig.st = openCallStore(t, env)
	return rig
}

// placeLive enqueues the live calls and waits for each to ring.
func (rig *admissionRig) placeLive(t *testing.T, ids []string) []*sipphone.Call {
	t.Helper()
	for _, id := range ids {
		enqueueCall(t, rig.client, id, rig.liveNumber)
	}
	var live []*sipphone.Call
	for range ids {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a deferral by chance costs 30 s
		c, err := rig.phone.WaitCall(ctx, rig.liveNumber)
		cancel()
		require.NoError(t, err, "live call never rang; output:\n%s", rig.w.out.String())
		live = append(live, c)
	}
	return live
}

// deferNew enqueues calls under pressure and checks each is deferred: put
// back for later with the reason (matching reason), no retry spent, never
// seen by the runner nor dialled.
func (rig *admissionRig) deferNew(t *testing.T, ids []string, reason string) {
	t.Helper()
	for i, id := range ids {
		enqueueCall(t, rig.client, id, rig.newNumbers[i])
	}
	for _, id := range ids {
		var info *asynq.TaskInfo
		waitUntil(t, id+" deferred", time.Minute, func() bool {
			var err error
			info, err = rig.insp.GetTaskInfo(tasks.QueueCalls, id)
			return err == nil && info.State == asynq.TaskStateRetry
		})
		require.Regexp(t, reason, info.LastErr, id)
		require.Equal(t, 0, info.Retried, "%s: a deferral spends no retry", id)
		_, err := rig.st.GetCall(context.Background(), id)
		require.ErrorIs(t, err, store.ErrNotFound, "%s: deferred before the runner saw it", id)
	}
	require.Empty(t, callsTo(rig.phone, rig.newNumbers...), "no deferred call was dialled")
}

// waitPlaced waits for each deferred call to be dialled, after since.
func (rig *admissionRig) waitPlaced(t *testing.T, ids []string, since time.Time) {
	t.Helper()
	for i, id := range ids {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		c, err := rig.phone.WaitCall(ctx, rig.newNumbers[i])
		cancel()
		require.NoError(t, err, "%s was not placed once the pressure lifted; output:\n%s", id, rig.w.out.String())
		ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
		rec, err := c.Wait(ctx, func(r sipphone.Record) bool { return len(r.Events) > 0 })
		cancel()
		require.NoError(t, err, id)
		require.True(t, rec.Events[0].At.After(since), "%s dialled too early", id)
	}
}

// finish waits for every call to end, stops the worker, and checks each
// was claimed once and each live call completed.
func (rig *admissionRig) finish(t *testing.T, liveIDs, newIDs []string) {
	t.Helper()
	ctx := context.Background()
	ids := append(slices.Clone(liveIDs), newIDs...)
	waitUntil(t, "every call ended", 3*time.Minute, func() bool {
		for _, id := range ids {
			c, err := rig.st.GetCall(ctx, id)
			if err != nil || !c.Status.Terminal() {
				return false
			}
		}
		return true
	})
	require.NoError(t, rig.w.sigterm(t), rig.w.out.String())
	for _, id := range ids {
		c, err := rig.st.GetCall(ctx, id)
		require.NoError(t, err)
		require.Equal(t, 1, c.Claims, "%s dialled once", id)
		if slices.Contains(liveIDs, id) {
			require.Equal(t, store.CallCompleted, c.Status, "%s: %s", id, c.Error)
		}
	}
}

// logPressure logs the worker's backpressure lines: when each reason went
// on and off, with the figures of that look.
func (rig *admissionRig) logPressure(t *testing.T) {
	for _, l := range pressureLines(rig.w.out.String()) {
		t.Logf("worker: %s", l)
	}
}

// waitDone waits for the phone's side of a call to be over.
func waitDone(t *testing.T, c *sipphone.Call) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(3 * time.Minute):
		t.Fatalf("the call to the phone never ended")
	}
}

func callIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%04d", prefix, i+1)
	}
	return ids
}

// Reasons as the pressure logs them.
const (
	monitorCPU     = monitor.PressureCPU
	monitorAudio   = monitor.PressureAudio
	monitorCPUWait = monitor.PressureCPUWait
)

// hogSpeech renders the callee's lines with espeak-ng.
func hogSpeech(t *testing.T) [][]int16 {
	t.Helper()
	var out [][]int16
	for _, l := range hogLineTexts {
		pcm, err := calleesim.Speech(context.Background(), l, sipphone.SampleRate)
		require.NoError(t, err, "espeak-ng renders the callee's lines")
		out = append(out, pcm)
	}
	return out
}

// siblingNumber is number with its last digit changed: the same zone, a
// line of its own at the phone.
func siblingNumber(number string, i int) string {
	last := int(number[len(number)-1] - '0')
	return number[:len(number)-1] + fmt.Sprint((last+1+i)%10)
}

func enqueueCall(t *testing.T, client *asynq.Client, id, phone string) {
	t.Helper()
	tk, err := tasks.New(tasks.CallOutbound{Inline: &tasks.InlineCall{
		AttemptID: id, Phone: phone, Instructions: "Ask for the patient's records.",
	}}, asynq.TaskID(id), asynq.Retention(time.Hour))
	require.NoError(t, err)
	_, err = client.Enqueue(tk)
	require.NoError(t, err)
}

// startHogs starts n busy loops in processes of their own, as a neighbour
// saturating the machine; the returned func (also run at cleanup) kills
// them.
func startHogs(t *testing.T, n int) (stop func()) {
	t.Helper()
	var hogs []*exec.Cmd
	stop = func() {
		for _, h := range hogs {
			_ = h.Process.Kill()
			_ = h.Wait()
		}
		hogs = nil
	}
	t.Cleanup(stop)
	for range n {
		h := exec.Command("bash", "-c", "while :; do :; done")
		require.NoError(t, h.Start())
		hogs = append(hogs, h)
	}
	return stop
}

// waitUntil polls cond until it holds, failing the test after d.
func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
}

// pressureReasons replays the worker's backpressure lines and returns the
// reasons on at the end.
func pressureReasons(out string) map[string]bool {
	on := map[string]bool{}
	for _, l := range pressureLines(out) {
		var ev struct {
			Msg      string `json:"msg"`
			Pressure string `json:"pressure"`
		}
		if json.Unmarshal([]byte(l), &ev) != nil {
			continue
		}
		switch ev.Msg {
		case "backpressure.on", "backpressure.reason_on":
			on[ev.Pressure] = true
		case "backpressure.off", "backpressure.reason_off":
			delete(on, ev.Pressure)
		}
	}
	return on
}

func pressureLines(out string) []string {
	var ls []string
	for l := range strings.Lines(out) {
		if strings.Contains(l, `"msg":"backpressure.`) {
			ls = append(ls, strings.TrimSpace(l))
		}
	}
	return ls
}

// callsTo lists the phone's calls to any of numbers.
func callsTo(p *sipphone.Phone, numbers ...string) []*sipphone.Call {
	var out []*sipphone.Call
	for _, c := range p.Calls() {
		if slices.Contains(numbers, c.Record().Number) {
			out = append(out, c)
		}
	}
	return out
}

// reply is one callee line and how long after its last frame the agent's
// answer was first heard.
type reply struct {
	said    time.Time
	latency time.Duration
}

// replies measures, on the phone's side, each line it finished saying and
// the first speech heard after it.
func replies(c *sipphone.Call) []reply {
	spans := c.Heard().Spans(200 * time.Millisecond)
	var out []reply
	for _, u := range c.Record().Said {
		if u.Cleared {
			continue
		}
		end := u.End.Add(20 * time.Millisecond) // the last frame's length
		for _, s := range spans {
			if s.Start.After(end) {
				out = append(out, reply{said: u.End, latency: s.Start.Sub(end)})
				break
			}
		}
	}
	return out
}

// minReplies is the fewest replies any call heard to lines said after since.
func minReplies(calls []*sipphone.Call, since time.Time) int {
	least := -1
	for _, c := range calls {
		n := 0
		for _, r := range replies(c) {
			if r.said.After(since) {
				n++
			}
		}
		if least < 0 || n < least {
			least = n
		}
	}
	return least
}

func latencySummary(ms []float64) string {
	if len(ms) == 0 {
		return "none"
	}
	s := slices.Sorted(slices.Values(ms))
	q := func(p float64) float64 { return s[min(int(p*float64(len(s))), len(s)-1)] }
	return fmt.Sprintf("n=%d p50=%.0f p95=%.0f max=%.0f", len(s), q(0.5), q(0.95), s[len(s)-1])
}

// cpuSample is a process's CPU time so far, and when it was read.
type cpuSample struct {
	cpu time.Duration
	at  time.Time
}

// ownCPU reads the worker's user and system time from /proc (fields 14
// and 15 of its stat, in clock ticks of 1/100 s).
func ownCPU(t *testing.T, p *proc) cpuSample {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	require.NoError(t, err)
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	var utime, stime int64
	_, err = fmt.Sscan(f[11]+" "+f[12], &utime, &stime)
	require.NoError(t, err)
	return cpuSample{cpu: time.Duration(utime+stime) * 10 * time.Millisecond, at: time.Now()}
}

// pctSince is the CPU used between prev and s, in percent of all cores.
func (s cpuSample) pctSince(prev cpuSample) float64 {
	return float64(s.cpu-prev.cpu) / float64(s.at.Sub(prev.at)) / float64(runtime.NumCPU()) * 100
}

// loadAverage is the machine's 1, 5 and 15 minute load.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
