package call

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docshield/voice-worker/internal/recording"
	"github.com/docshield/voice-worker/internal/store"
	"go.uber.org/zap"
)

// recordingStateReserve is the part of recordingCloseTimeout kept for
// writing the recording's state on the call after the recorder finished.
const recordingStateReserve = 2 * time.Second

// RecordingStore is what recordings write to MongoDB. *store.Store
// implements it.
type RecordingStore interface {
	RecordPartialRecording(ctx context.Context, c store.Claim, p store.PartialRecording) error
	RecordRecordingState(ctx context.Context, c store.Claim, s store.RecordingState) error
	SettleRecording(ctx context.Context, attemptID string, s store.RecordingState) error
	NotePendingRecording(ctx context.Context, attemptID string, s store.RecordingState) error
	OrphanRecordings(ctx context.Context, now time.Time, grace time.Duration, limit int) ([]store.OrphanRecording, error)
	ElectRecordingJoin(ctx context.Context, attemptID string, epoch int64, owner string) (bool, error)
}

var _ RecordingStore = (*store.Store)(nil)

// RecordingOptions configure a worker's recordings.
type RecordingOptions struct {
	// Storage is the recordings bucket (*bucket.Client).
	Storage recording.Storage
	Store   RecordingStore
	// Env is APP_ENV, the first level of every key.
	Env string
	// Segment is RECORDING_SEGMENT_DURATION.
	Segment time.Duration
	// Owner names this process on pending recordings (the claim owner).
	Owner string
	// Lease is CALL_LEASE: a pending recording's note lasts this long
	// without renewal, and segments an ended call left behind are joined
	// by any worker this long after the call ended.
	Lease time.Duration
	// SpoolMemoryBytes is RECORDING_SPOOL_MEMORY_MB; SpoolDir is where
	// spilled audio goes (default under os.TempDir()).
	SpoolMemoryBytes int64
	SpoolDir         string
	Logger           *zap.Logger
}

// Recordings is a worker's recording side: the process's one spool, which
// holds unstored audio past the end of a call and joins orphaned
// recordings, and the factory that starts each answered call's recorder.
// Start and Shutdown are called by the daemon.
type Recordings struct {
	// Immutable after NewRecordings.
	o     RecordingOptions
	spool *recording.Spool
}

// NewRecordings builds the spool; Start runs it.
func NewRecordings(o RecordingOptions) (*Recordings, error) {
	if o.Store == nil {
		return nil, errors.New("call: RecordingOptions.Store is nil")
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	spool, err := recording.NewSpool(recording.SpoolConfig{
		Storage: o.Storage, Ledger: spoolLedger{st: o.Store, owner: o.Owner, grace: o.Lease},
		Owner: o.Owner, Lease: o.Lease, MemoryBytes: o.SpoolMemoryBytes, Dir: o.SpoolDir, Logger: o.Logger,
	})
	if err != nil {
		return nil, err
	}
	return &Recordings{o: o, spool: spool}, nil
}

// Start runs the spool (its first sweep joins what dead workers left).
func (r *Recordings) Start() { r.spool.Start() }

// Shutdown gives the recordings still held until ctx's deadline to reach
// storage, then records on each call what could not be stored.
func (r *Recordings) Shutdown(ctx context.Context) recording.SpoolReport {
	return r.spool.Shutdown(ctx)
}

// Spool is the process's spool (for its usage figures).
func (r *Recordings) Spool() *recording.Spool { return r.spool }

// Factory starts each answered call's two-channel recording. While the
// call runs, the call document says where its stored segments are; at
// hang-up it says how the recording stands (complete, partial, or pending
// upload with the worker that holds the rest).
func (r *Recordings) Factory() RecorderFactory {
	return func(ctx context.Context, claim store.Claim, c *store.Call, answeredAt time.Time) (Recorder, error) {
		campaignID := ""
		if !c.CampaignID.IsZero() {
			campaignID = c.CampaignID.Hex()
		}
		rec, err := recording.New(recording.Config{
			AttemptID: c.ID, CampaignID: campaignID, Env: r.o.Env, Start: answeredAt,
			Spool: r.spool, Logger: r.o.Logger,
			OnPartial: func(ctx context.Context, p recording.PartialInfo) error {
				return r.o.Store.RecordPartialRecording(ctx, claim, store.PartialRecording(p))
			},
			Options: recording.Options{CloseTimeout: recordingCloseTimeout, SegmentDuration: r.o.Segment},
		})
		if err != nil {
			return nil, err
		}
		return &callRecorder{Recorder: rec, st: r.o.Store, claim: claim, log: r.o.Logger}, nil
	}
}

// callRecorder writes the recording's state on the call, under the
// claim, once the recorder has finished (or left the rest to the spool).
type callRecorder struct {
	*recording.Recorder
	st    RecordingStore
	claim store.Claim
	log   *zap.Logger
}

// Close finishes the recording within ctx, keeping recordingStateReserve
// of it to write the outcome.
func (r *callRecorder) Close(ctx context.Context) (*store.Recording, error) {
	fctx := ctx
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		fctx, cancel = context.WithDeadline(ctx, d.Add(-recordingStateReserve))
		defer cancel()
	}
	res, err := r.Finish(fctx)
	if werr := r.st.RecordRecordingState(ctx, r.claim, recordingState(res)); werr != nil {
		// The spool renews a pending note on the ended call, and a sweep
		// settles what is left; the terminal write carries the reason.
		r.log.Warn("call.recording_state_not_written", zap.String("state", string(res.State)), zap.Error(werr))
	}
	return storedRecording(res.Stored), err
}

// recordingState maps a recording's outcome onto the call document.
func recordingState(res recording.Result) store.RecordingState {
	s := store.RecordingState{Recording: storedRecording(res.Stored), LostMS: res.LostMS, Error: res.Reason}
	switch res.State {
	case recording.Complete:
		s.Status, s.Error = store.RecordingComplete, ""
	case recording.Partial:
		s.Status = store.RecordingPartial
	case recording.PendingUpload:
		s.Status = store.RecordingPendingUpload
		if n := res.Pending; n != nil {
			s.Pending = &store.RecordingPending{Owner: n.Owner, LeaseUntil: n.LeaseUntil.UTC().Truncate(time.Millisecond),
				Since: n.Since.UTC().Truncate(time.Millisecond), DurationMS: n.DurationMS}
		}
	}
	if res.Partial != nil {
		p := store.PartialRecording(*res.Partial)
		s.Partial = &p
	}
	return s
}

func storedRecording(s *recording.Stored) *store.Recording {
	if s == nil {
		return nil
	}
	return &store.Recording{Bucket: s.Bucket, Key: s.Key, Bytes: s.Bytes, DurationMS: s.DurationMS, Format: s.Format, SHA256: s.SHA256}
}

// spoolLedger is the spool's view of the call documents.
type spoolLedger struct {
	st    RecordingStore
	owner string
	grace time.Duration
}

func (l spoolLedger) Pending(ctx context.Context, attemptID string, n recording.PendingNote) error {
	s := recordingState(recording.Result{State: recording.PendingUpload, Partial: n.Partial, Reason: n.Reason, Pending: &n})
	return notEnded(l.st.NotePendingRecording(ctx, attemptID, s))
}

func (l spoolLedger) Settle(ctx context.Context, attemptID string, r recording.Result) error {
	return notEnded(l.st.SettleRecording(ctx, attemptID, recordingState(r)))
}

func (l spoolLedger) Orphans(ctx context.Context, now time.Time, limit int) ([]recording.Orphan, error) {
	found, err := l.st.OrphanRecordings(ctx, now, l.grace, limit)
	if err != nil {
		return nil, err
	}
	out := make([]recording.Orphan, len(found))
	for i, f := range found {
		o := recording.Orphan{AttemptID: f.AttemptID}
		if f.Partial != nil {
			p := recording.PartialInfo(*f.Partial)
			o.Partial = &p
		}
		switch {
		case f.Status == store.RecordingPendingUpload && f.Pending != nil:
			o.DurationMS = f.Pending.DurationMS
		case f.Status == store.RecordingPartial:
			o.LostMS, o.Reason = f.LostMS, f.Error
		}
		out[i] = o
	}
	return out, nil
}

func (l spoolLedger) Elect(ctx context.Context, attemptID string, epoch int64) (bool, error) {
	return l.st.ElectRecordingJoin(ctx, attemptID, epoch, l.owner)
}

func notEnded(err error) error {
	if errors.Is(err, store.ErrCallNotEnded) {
		return fmt.Errorf("%w: %w", recording.ErrNotEnded, err)
	}
	return err
}
