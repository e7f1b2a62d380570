package monitor

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/docshield/voice-worker/internal/health"
	"github.com/docshield/voice-worker/internal/periodic"
	"github.com/docshield/voice-worker/internal/queue"
	"go.uber.org/zap"
)

// The operations doc's schedule.
const (
	DefaultHeartbeatInterval = 30 * time.Second
	DefaultRedisInterval     = 30 * time.Second
	DefaultMongoInterval     = 60 * time.Second
	DefaultS3Interval        = 120 * time.Second
	DefaultEvalInterval      = 30 * time.Second
	DefaultCheckTimeout      = 10 * time.Second
)

// ScheduledCheck is a Check and how often the monitor runs it.
type ScheduledCheck struct {
	health.Check
	Interval time.Duration
}

// Ticker is what a duty waits on between runs; tests drive it by hand.
type Ticker = periodic.Ticker

// MonitorOptions configure a Monitor. Zero values take the defaults.
type MonitorOptions struct {
	Logger *zap.Logger
	// Worker names this process in published snapshots (the claim owner).
	Worker string

	Checks            []ScheduledCheck
	CheckTimeout      time.Duration // per check run; capped at the check's interval
	HeartbeatInterval time.Duration
	EvalInterval      time.Duration
	ErrorRateWindow   time.Duration
	// ErrorRateMinTasks is the fewest task attempts in the window the
	// error rate is graded on; 0: DefaultErrorRateMinTasks.
	ErrorRateMinTasks int
	Thresholds        Thresholds

	// Proc reads CPU and memory; nil reads this process.
	Proc *ProcFS
	// Queues reads the queues (queue.Stats with an Inspector); nil leaves
	// out the queue-length and error-rate metrics.
	Queues func(context.Context) ([]queue.QueueStats, error)
	// Serving lists the queues this process serves, counted as served
	// before its own heartbeat reaches Redis; nil: none.
	Serving func() []string
	// Redis reads Redis's INFO (queue.Inspect); nil leaves out the Redis
	// memory metric.
	Redis func(context.Context) (queue.RedisInfo, error)
	// Pressure, when set, follows the memory warning threshold.
	Pressure *Pressure
	// Reporter says whether this process is the fleet's elected reporter
	// (elect.Elector.Leader): only it logs the alerts of cluster-wide
	// metrics (queues, error rate, Redis memory). nil: this process
	// reports them, as a lone worker does.
	Reporter func() bool
	// Publish, when set, receives every evaluation (RedisSnapshots.Publish
	// makes it visible to `worker health`).
	Publish func(context.Context, Snapshot) error

	// NewTicker and Now are seams for tests; nil uses real time. Duties
	// are named "check:<name>", "heartbeat" and "evaluate".
	NewTicker func(duty string, every time.Duration) Ticker
	Now       func() time.Time
}

// Monitor runs the periodic health checks, the heartbeat and the threshold
// evaluator, each a small duty with its own goroutine (a periodic.Loop),
// as asynq runs its heartbeater and janitor. Start once; Shutdown stops
// them all and waits.
type Monitor struct {
	// Immutable after NewMonitor.
	status *checkStatus // shared by the checkers and CheckResults
	loops  []*periodic.Loop

	checkers  []*checker
	heartbeat *heartbeater
	eval      *evaluator
}

// NewMonitor validates o and builds the duties without starting them.
func NewMonitor(o MonitorOptions) (*Monitor, error) {
	if o.Logger == nil {
		return nil, fmt.Errorf("monitor: Logger is required")
	}
	if o.Thresholds == (Thresholds{}) {
		o.Thresholds = DefaultThresholds()
	}
	if err := o.Thresholds.Validate(); err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	o.CheckTimeout = orDefault(o.CheckTimeout, DefaultCheckTimeout)
	o.HeartbeatInterval = orDefault(o.HeartbeatInterval, DefaultHeartbeatInterval)
	o.EvalInterval = orDefault(o.EvalInterval, DefaultEvalInterval)
	o.ErrorRateWindow = orDefault(o.ErrorRateWindow, DefaultErrorRateWindow)
	if o.Now == nil {
		o.Now = time.Now
	}
	proc := DefaultProcFS()
	if o.Proc != nil {
		proc = *o.Proc
	}
	status := newCheckStatus()
	m := &Monitor{status: status}
	duty := func(name string, every time.Duration, run func(context.Context)) {
		lo := periodic.Options{Every: every, Run: run}
		if o.NewTicker != nil {
			lo.NewTicker = func(d time.Duration) periodic.Ticker { return o.NewTicker(name, d) }
		}
		m.loops = append(m.loops, periodic.New(lo))
	}
	for _, c := range o.Checks {
		if c.Interval <= 0 || c.Run == nil || c.Name == "" {
			return nil, fmt.Errorf("monitor: check %q needs a name, a Run func and a positive interval", c.Name)
		}
		ch := &checker{log: o.Logger, check: c.Check, timeout: min(o.CheckTimeout, c.Interval), now: o.Now, status: status}
		m.checkers = append(m.checkers, ch)
		duty("check:"+c.Name, c.Interval, ch.run)
	}
	m.heartbeat = &heartbeater{
		log: o.Logger, now: o.Now, started: o.Now(),
		rss: proc.RSSBytes, cgroupMemory: proc.CgroupMemoryBytes,
	}
	duty("heartbeat", o.HeartbeatInterval, m.heartbeat.beat)
	m.eval = &evaluator{
		log: o.Logger, now: o.Now,
		worker: o.Worker, th: o.Thresholds,
		cpu: NewCPUMeter(proc, o.Now).Sample, rss: proc.RSSBytes, cgroupMemory: proc.CgroupMemoryBytes,
		queues: o.Queues, serving: o.Serving, redis: o.Redis, pressure: o.Pressure, publish: o.Publish,
		reporter: o.Reporter, minTasks: int64(cmp.Or(o.ErrorRateMinTasks, DefaultErrorRateMinTasks)),
		alerts: NewAlerts(o.Thresholds.Hysteresis), errRate: NewErrorRate(o.ErrorRateWindow),
		trouble: map[string]bool{},
	}
	duty("evaluate", o.EvalInterval, m.eval.evaluate)
	return m, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Start runs every duty once now and then on its schedule, until
// Shutdown.
func (m *Monitor) Start() {
	for _, l := range m.loops {
		l.Start()
	}
}

// Shutdown stops the duties, interrupting checks in flight, and waits for
// their goroutines to end.
func (m *Monitor) Shutdown() {
	for _, l := range m.loops {
		l.Shutdown()
	}
}

// Latest is the last evaluation; zero before the first.
func (m *Monitor) Latest() Snapshot {
	if s := m.eval.latest.Load(); s != nil {
		return *s
	}
	return Snapshot{}
}

// CheckResults is the last result of each periodic check, by name.
func (m *Monitor) CheckResults() []health.Result { return m.status.all() }

// checkStatus is the last result of each check, shared between the
// checkers (writers) and the metrics endpoint (reader) under mu.
type checkStatus struct {
	mu   sync.Mutex
	last map[string]health.Result
}

func newCheckStatus() *checkStatus { return &checkStatus{last: map[string]health.Result{}} }

func (s *checkStatus) set(r health.Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last[r.Name] = r
}

func (s *checkStatus) all() []health.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]health.Result, 0, len(s.last))
	for _, r := range s.last {
		out = append(out, r)
	}
	sortResults(out)
	return out
}
