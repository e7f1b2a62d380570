package recording

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/docshield/voice-worker/internal/periodic"
	"go.uber.org/zap"
)

// Spool defaults.
const (
	// DefaultSpoolMemory holds about three hours of call audio (at about
	// 170 KiB per minute) before anything is spilled to disk: a small
	// share of a 512 MB dyno.
	DefaultSpoolMemory = 32 << 20
	// DefaultSpoolDisk bounds the encrypted spill files.
	DefaultSpoolDisk = 1 << 30
	// DefaultGiveUpAfter: a recording storage has refused for this long
	// is given up, and its call document says so.
	DefaultGiveUpAfter = 24 * time.Hour
	// DefaultLease is a pending recording's lease, CALL_LEASE's default.
	DefaultLease = 2 * time.Minute
	// storageSlots bounds the storage operations in flight at once, so a
	// storage that comes back is not hit by every waiting recording at
	// once.
	storageSlots = 8
	// orphanLimit bounds one sweep; the next takes the rest.
	orphanLimit = 20
	// shutdownReport is the most of Shutdown's budget kept for writing
	// what could not be stored.
	shutdownReport = 2 * time.Second
)

// ErrSpoolStopped is returned by New once the spool is shutting down.
var ErrSpoolStopped = errors.New("recording: spool not running")

// ErrNotEnded is what Ledger.Settle returns while the call has not ended:
// the spool tries again.
var ErrNotEnded = errors.New("recording: call has not ended yet")

// SpoolConfig configures a Spool.
type SpoolConfig struct {
	Storage Storage
	// Ledger is where outcomes go (the call documents) and where orphaned
	// recordings are found. Nil: outcomes of recordings left pending are
	// only logged, and there is no sweep.
	Ledger Ledger
	// Owner names this process in pending notes (the worker's owner name).
	Owner string
	// Lease is how long a pending note holds without renewal; it is
	// renewed every third of it, and a recording whose owner stopped
	// renewing is taken over once it lapses. Default DefaultLease.
	Lease time.Duration
	// MemoryBytes caps the unstored audio of the whole process held in
	// memory; past it, audio is spilled to Dir. Default DefaultSpoolMemory.
	MemoryBytes int64
	// DiskBytes caps the spilled audio; past it, a recording stops and
	// says so. Default DefaultSpoolDisk.
	DiskBytes int64
	// Dir is where spill files go; default <os.TempDir()>/docshield-recordings.
	Dir string
	// GiveUpAfter: storage refusing a recording for this long ends it as
	// partial. Default DefaultGiveUpAfter.
	GiveUpAfter time.Duration
	// SweepInterval is how often pending notes are renewed and orphaned
	// recordings looked for; default Lease/3.
	SweepInterval time.Duration
	// HTTPClient reads segments back through presigned URLs.
	HTTPClient *http.Client
	Logger     *zap.Logger
	// Now is the wall clock; default time.Now.
	Now func() time.Time
}

// Ledger is what the spool reads and writes about recordings outside
// storage: the call documents. internal/call implements it over the store.
type Ledger interface {
	// Pending notes (or renews) that owner holds the recording's unstored
	// audio until n.LeaseUntil. It only ever touches an ended call.
	Pending(ctx context.Context, attemptID string, n PendingNote) error
	// Settle records how a recording that was left pending ended; before
	// the call has ended it returns ErrNotEnded.
	Settle(ctx context.Context, attemptID string, r Result) error
	// Orphans lists ended calls whose recording needs joining by someone
	// else: stored segments and no owner (killed mid-call, or a report at
	// shutdown), or pending with a lapsed lease.
	Orphans(ctx context.Context, now time.Time, limit int) ([]Orphan, error)
	// Elect returns true for exactly one caller per attempt and epoch,
	// across processes.
	Elect(ctx context.Context, attemptID string, epoch int64) (bool, error)
}

// PendingNote says who holds a recording that storage has not taken yet.
type PendingNote struct {
	Owner      string
	LeaseUntil time.Time
	// Since is when the recording was left pending (the hang-up).
	Since time.Time
	// DurationMS is the whole recording's length; what a later join
	// cannot find of it is lost.
	DurationMS int64
	// Partial is where the segments already stored are; nil: none.
	Partial *PartialInfo
	Reason  string
}

// Spool is the process's one holder of recording audio that storage has
// not taken yet. Every recording's segments go through it while the call
// runs, and whatever is left at hang-up stays with it after the task ends:
// it retries with backoff until storage is back, joins the segments into
// the final object and records it on the call (through the Ledger). Memory
// is capped for the whole process; past the cap audio is spilled to disk,
// encrypted under a key that lives only in this process.
//
// It also sweeps: ended calls whose recording is still only segments (the
// worker was killed, or gave up at shutdown) are joined, one process per
// call, elected through the Ledger.
//
// Start and Shutdown are called by its owner, as asynq's components are.
type Spool struct {
	// Immutable after NewSpool.
	cfg   SpoolConfig
	log   *zap.Logger
	buf   *buffers
	slots chan struct{}

	// Set by Start, read-only after it.
	work       context.Context // storage work; ends when Shutdown's upload time is up
	cancelWork context.CancelFunc
	life       context.Context // reports; ends when Shutdown's budget is spent
	cancelLife context.CancelFunc

	// Shared: guarded by mu.
	mu       sync.Mutex
	running  bool
	stopping bool
	jobs     map[*job]struct{}
	drained  chan struct{} // closed when stopping and no job is left

	sweeper *periodic.Loop // nil without a Ledger
	wg      sync.WaitGroup // every job goroutine
}

// NewSpool checks cfg and fills the defaults; Start begins it.
func NewSpool(cfg SpoolConfig) (*Spool, error) {
	if cfg.Storage == nil {
		return nil, errors.New("recording: SpoolConfig.Storage is nil")
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.Lease, DefaultLease)
	def(&cfg.GiveUpAfter, DefaultGiveUpAfter)
	def(&cfg.SweepInterval, cfg.Lease/3)
	if cfg.MemoryBytes <= 0 {
		cfg.MemoryBytes = DefaultSpoolMemory
	}
	if cfg.DiskBytes <= 0 {
		cfg.DiskBytes = DefaultSpoolDisk
	}
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(os.TempDir(), "docshield-recordings")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = defaultHTTPClient()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	buf, err := newBuffers(cfg.MemoryBytes, cfg.DiskBytes, cfg.Dir)
	if err != nil {
		return nil, err
	}
	return &Spool{cfg: cfg, log: log, buf: buf, slots: make(chan struct{}, storageSlots), jobs: map[*job]struct{}{}}, nil
}

// Start runs the spool: recordings can begin, and the sweeper renews
// pending notes and joins orphaned recordings, the first pass at once.
func (s *Spool) Start() {
	s.work, s.cancelWork = context.WithCancel(context.Background())
	s.life, s.cancelLife = context.WithCancel(context.Background())
	s.mu.Lock()
	s.running = true
	s.mu.Unlock()
	if s.cfg.Ledger == nil {
		return
	}
	s.sweeper = periodic.New(periodic.Options{Every: s.cfg.SweepInterval, Run: func(ctx context.Context) {
		s.renew(ctx)
		s.sweep(ctx)
	}})
	s.sweeper.Start()
}

// SpoolReport is what Shutdown could not store.
type SpoolReport struct {
	// Recordings still held when the time ran out, and their audio.
	Recordings int
	LostMS     int64
}

// Shutdown refuses new recordings and gives those still held until ctx's
// deadline (less a reserve to write the reports) to reach storage. Then
// each one left is recorded on its call as partial: the segments already
// stored stay for the next worker to join, the rest is lost.
func (s *Spool) Shutdown(ctx context.Context) SpoolReport {
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return SpoolReport{}
	}
	s.running, s.stopping = false, true
	s.drained = make(chan struct{})
	if len(s.jobs) == 0 {
		close(s.drained)
	}
	held := len(s.jobs)
	s.mu.Unlock()

	uploadUntil := s.cfg.Now().Add(time.Hour)
	if d, ok := ctx.Deadline(); ok {
		uploadUntil = d.Add(-min(shutdownReport, time.Until(d)/4))
	}
	if held > 0 {
		s.log.Info("recording.spool_draining", zap.Int("recordings", held), zap.Time("until", uploadUntil))
	}
	t := time.NewTimer(time.Until(uploadUntil))
	select {
	case <-s.drained:
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	// Jobs still held stop trying and report; the reports get the rest
	// of ctx. Which ones were still held is taken before they are told:
	// a told job ends and leaves s.jobs at once, and would go uncounted.
	s.mu.Lock()
	left := make([]*job, 0, len(s.jobs))
	for j := range s.jobs {
		left = append(left, j)
	}
	s.mu.Unlock()
	s.cancelWork()
	if s.sweeper != nil {
		s.sweeper.Shutdown()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancelLife()
		<-done
	}
	s.cancelLife()
	// Every job has ended: those held at the time-out that still did not
	// store the whole recording are what the shutdown left unstored.
	var report SpoolReport
	for _, j := range left {
		j.mu.Lock()
		complete := j.result != nil && j.result.State == Complete
		j.mu.Unlock()
		if complete {
			continue // it made it between the time-out and the telling
		}
		report.Recordings++
		report.LostMS += j.unstoredMS()
	}
	s.buf.removeDir()
	if report.Recordings > 0 {
		s.log.Warn("recording.spool_stopped", zap.Int("recordings_unstored", report.Recordings), zap.Int64("lost_ms", report.LostMS))
	} else {
		s.log.Info("recording.spool_stopped", zap.Int("recordings_unstored", 0))
	}
	return report
}

// Usage is the unstored audio held now, in memory and on disk, and how
// many pieces were ever spilled.
func (s *Spool) Usage() (memBytes, diskBytes, spilled int64) {
	m, d := s.buf.usage()
	return m, d, s.buf.spilled.Load()
}

// Held is the number of recordings the spool holds (live or pending).
func (s *Spool) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.jobs)
}

// begin registers a recording and starts its job goroutine.
func (s *Spool) begin(j *job) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return ErrSpoolStopped
	}
	s.jobs[j] = struct{}{}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		j.run(s.work)
	}()
	return nil
}

func (s *Spool) remove(j *job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.jobs, j)
	if s.stopping && len(s.jobs) == 0 {
		select {
		case <-s.drained:
		default:
			close(s.drained)
		}
	}
}

// acquire takes a storage slot; it fails only when ctx ends.
func (s *Spool) acquire(ctx context.Context) error {
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Spool) releaseSlot() { <-s.slots }

// renew keeps the pending notes of this process's detached recordings
// alive, rewriting the whole note (so a note whose first write failed at
// hang-up appears now).
func (s *Spool) renew(ctx context.Context) {
	s.mu.Lock()
	var pending []*job
	for j := range s.jobs {
		pending = append(pending, j)
	}
	s.mu.Unlock()
	for _, j := range pending {
		n, ok := j.pendingNote(s.cfg.Now())
		if !ok {
			continue
		}
		if err := s.cfg.Ledger.Pending(ctx, j.cfg.AttemptID, n); err != nil && !errors.Is(err, ErrNotEnded) && ctx.Err() == nil {
			s.log.Warn("recording.pending_note_failed", zap.String("attempt_id", j.cfg.AttemptID), zap.Error(err))
		}
	}
}

// holds reports whether this process holds attemptID's recording.
func (s *Spool) holds(attemptID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for j := range s.jobs {
		if j.cfg.AttemptID == attemptID {
			return true
		}
	}
	return false
}

// sweep joins the orphaned recordings it wins the election for.
func (s *Spool) sweep(ctx context.Context) {
	now := s.cfg.Now()
	orphans, err := s.cfg.Ledger.Orphans(ctx, now, orphanLimit)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("recording.sweep_failed", zap.Error(err))
		}
		return
	}
	epoch := now.UnixNano() / int64(s.cfg.Lease)
	for _, o := range orphans {
		if ctx.Err() != nil {
			return
		}
		if s.holds(o.AttemptID) {
			continue // ours: the job records it
		}
		won, err := s.cfg.Ledger.Elect(ctx, o.AttemptID, epoch)
		if err != nil {
			s.log.Warn("recording.sweep_failed", zap.String("attempt_id", o.AttemptID), zap.Error(err))
			continue
		}
		if !won {
			continue
		}
		s.recoverOrphan(ctx, o)
	}
}
