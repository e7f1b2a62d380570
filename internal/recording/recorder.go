package recording

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docshield/voice-worker/internal/bucket"
	"go.uber.org/zap"
)

// Defaults and limits of Options.
const (
	DefaultSegmentDuration = 30 * time.Second
	// MaxSegmentDuration leaves 10 s of the 60 s crash budget for the jitter
	// window and the segment's upload.
	MaxSegmentDuration  = 50 * time.Second
	MinSegmentDuration  = time.Second
	DefaultJitterWindow = 250 * time.Millisecond
	// DefaultBitrate and DefaultComplexity are for a side whose packets
	// must be re-encoded (reencoder), the exception.
	DefaultBitrate    = 24000
	DefaultComplexity = 3
	// DefaultCloseTimeout is how long Close waits for the final object
	// before it leaves the recording to the spool as pending upload.
	DefaultCloseTimeout = 10 * time.Second
)

// Storage is what the recorder needs from S3; *bucket.Client implements
// it, and tests wrap it to inject faults.
type Storage interface {
	Bucket() string
	Put(ctx context.Context, key string, body io.ReadSeeker, contentType string, metadata map[string]string) error
	Upload(ctx context.Context, key string, body io.Reader, contentType string, metadata map[string]string) (bucket.UploadResult, error)
	// PresignGet is how segments are read back when they are joined: the
	// storage client has no plain GET.
	PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error)
	Delete(ctx context.Context, key string) error
	// Head is how a sweep finds the segments of a recording whose worker
	// died (the worker never lists the bucket); a missing object gives
	// bucket.ErrNotFound.
	Head(ctx context.Context, key string) (bucket.ObjectInfo, error)
}

var _ Storage = (*bucket.Client)(nil)

// Config identifies the call and says where its recording goes.
type Config struct {
	AttemptID string
	// CampaignID is empty for an inline one-off call.
	CampaignID string
	// Env is the deployment environment (APP_ENV), the key's first level.
	Env string
	// Start is position 0 of the recording (the answer), and its UTC date
	// names the keys. Audio stamped before it is dropped as late.
	Start time.Time
	// Spool is the process's spool, which stores the recording (its
	// Storage) and holds what storage has not taken yet.
	Spool *Spool
	// OnPartial is called, on the recorder's upload goroutine, after each
	// segment is stored, so the call document can say where the partial
	// recording is should the worker die. An error is logged and the call
	// repeated after the next segment. Optional.
	OnPartial func(ctx context.Context, p PartialInfo) error
	Logger    *zap.Logger
	Options   Options
}

// Options tune a Recorder; zero values pick the defaults.
type Options struct {
	// SegmentDuration is how much audio each crash-safe segment holds, and
	// so about the most a crash loses. Between MinSegmentDuration and
	// MaxSegmentDuration; default 30 s.
	SegmentDuration time.Duration
	// JitterWindow is how long audio waits for the other side's audio of
	// the same moment before it is encoded. Default 250 ms.
	JitterWindow time.Duration
	// Bitrate in bit/s and Complexity (libopus's CPU/quality trade-off,
	// 1-10) of the encoder for a side whose sender's packets are not 20 ms
	// mono packets, which must be re-encoded; default 24 kbit/s and 3.
	Bitrate    int
	Complexity int
	// CloseTimeout bounds how long Close waits for the last segment, the
	// join into the final object and the deletes. What is not done by then
	// goes on in the spool, and Close says the recording is pending
	// upload. Default DefaultCloseTimeout.
	CloseTimeout time.Duration
	// Now is the wall clock, for the silence a quiet call still records;
	// default time.Now.
	Now func() time.Time
}

// PartialInfo says where the segments of a call in progress are. The bson
// tags let the call flow store it as is.
type PartialInfo struct {
	Bucket string `bson:"bucket" json:"bucket"`
	// Prefix holds the segments, named SegmentName(0 ... Segments-1);
	// concatenated in order they are one valid Ogg Opus stream.
	Prefix   string `bson:"prefix" json:"prefix"`
	Segments int    `bson:"segments" json:"segments"`
	// DurationMS and Bytes are of the stored segments together.
	DurationMS int64 `bson:"duration_ms" json:"duration_ms"`
	Bytes      int64 `bson:"bytes" json:"bytes"`
	// FinalKey is where the finished recording will be: if it exists, the
	// segments were joined and may already be gone.
	FinalKey string `bson:"final_key" json:"final_key"`
}

// State is where a call's recording stands, as its call document says.
type State string

const (
	// None: there is no recording (no audio reached the recorder, or none
	// of it could be kept); Reason says why.
	None State = ""
	// Complete: the final object holds the whole recording.
	Complete State = "complete"
	// Partial: LostMS of the recording is gone for good; what was kept is
	// in the final object, or in stored segments a sweep will join.
	Partial State = "partial"
	// PendingUpload: storage has not taken all of it yet; the spool of
	// the worker in Pending keeps trying and records the outcome later.
	PendingUpload State = "pending_upload"
)

// Stored is a final object, for the call document.
type Stored struct {
	Bucket     string
	Key        string
	Bytes      int64
	DurationMS int64
	Format     string
	SHA256     string
}

// Result is how a recording ended, or stands: what Finish returns, and
// what the spool settles a pending recording with later.
type Result struct {
	State State
	// Stored is the final object; nil when none was written.
	Stored *Stored
	// Partial is set while stored segments wait to be joined: the call
	// document should keep pointing at them.
	Partial *PartialInfo
	// DurationMS is the whole recording's length (what the call had),
	// and LostMS the part of it that will never be stored.
	DurationMS int64
	LostMS     int64
	// Reason says why the recording is not complete (for the call
	// document's recording_error).
	Reason string
	// Pending is the note for the call document while PendingUpload.
	Pending *PendingNote
	Stats   Stats
}

// Stats count what did not go as planned, for logs and metrics.
type Stats struct {
	// DurationMS is the audio written.
	DurationMS int64
	// Segments were stored during the call.
	Segments int
	// Dropped: input refused because the recorder's queue was full. Late:
	// input that arrived after its moment was encoded.
	CalleeDroppedMS, AgentDroppedMS int64
	CalleeLateMS, AgentLateMS       int64
	// RejectedChunks had timestamps far from the call's timeline;
	// InvalidPackets were not Opus packets (their slots hold silence).
	RejectedChunks int64
	InvalidPackets int64
	// LeftoverSegments could not be deleted after the final object was
	// written; the bucket's lifecycle rule removes them.
	LeftoverSegments int
}

const (
	callee = 0 // left channel
	agent  = 1 // right channel
)

// The input queue. Producers append packets under a mutex and do not wake
// the mixer: it takes what waits every drainEvery, so a call's 100 packets
// a second cost it 10 wake-ups, not 100 (drainEvery is well inside the
// jitter window, so nothing is late for it). A backlog of drainAt packets
// (audio fed faster than real time) wakes it at once. queueChunks bounds
// the queue, about 5 s of both sides' packets; the mixer keeps up easily,
// so it only matters when the process is starved.
const (
	drainEvery  = 100 * time.Millisecond
	drainAt     = queueChunks / 4
	queueChunks = 512
)

// inbox is the input queue.
type inbox struct {
	mu     sync.Mutex
	chunks []chunk
}

// chunk is one packet on its way to the mixer.
type chunk struct {
	side    int
	at      time.Time
	arrived bool // at is when the packet arrived (its audio ended), not when it began
	pkt     []byte
}

// Recorder records one call. CalleePacket and AgentPacket may be called
// from any goroutine and never block; Close (or Finish) must be called once
// the call ends: it stops the recorder's goroutines.
type Recorder struct {
	// Immutable after New.
	cfg     Config
	opts    Options
	keys    Keys
	log     *zap.Logger
	in      inbox
	wake    chan struct{} // capacity 1: a backlog waits in in
	stopMix chan struct{}
	mixDone chan mixResult
	job     *job

	// Shared, atomic.
	queued  atomic.Int64 // chunks waiting in in, or being placed
	closed  atomic.Bool
	dropped [2]atomic.Int64 // 48 kHz samples

	closeOnce sync.Once
	result    Result // written once by Close
}

// New validates cfg and starts recording: the mixer goroutine (alignment,
// the Ogg stream) and the recording's job in the spool (segments to
// storage).
func New(cfg Config) (*Recorder, error) {
	opts, err := cfg.Options.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Spool == nil {
		return nil, errors.New("recording: Config.Spool is nil")
	}
	if cfg.AttemptID == "" {
		return nil, errors.New("recording: Config.AttemptID is empty")
	}
	keys, err := KeysFor(cfg.Env, cfg.CampaignID, cfg.AttemptID, cfg.Start)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	log = log.With(zap.String("attempt_id", cfg.AttemptID))
	r := &Recorder{
		cfg:     cfg,
		opts:    opts,
		keys:    keys,
		log:     log,
		wake:    make(chan struct{}, 1),
		stopMix: make(chan struct{}),
		mixDone: make(chan mixResult, 1),
	}
	m, err := newMixer(r)
	if err != nil {
		return nil, err
	}
	r.job = newJob(cfg.Spool, cfg, keys, log)
	if err := cfg.Spool.begin(r.job); err != nil {
		return nil, err
	}
	go m.run()
	return r, nil
}

func (o Options) withDefaults() (Options, error) {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.SegmentDuration, DefaultSegmentDuration)
	def(&o.JitterWindow, DefaultJitterWindow)
	def(&o.CloseTimeout, DefaultCloseTimeout)
	if o.Bitrate == 0 {
		o.Bitrate = DefaultBitrate
	}
	if o.Complexity == 0 {
		o.Complexity = DefaultComplexity
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	switch {
	case o.SegmentDuration < MinSegmentDuration || o.SegmentDuration > MaxSegmentDuration:
		return o, fmt.Errorf("recording: Options.SegmentDuration %v must be between %v and %v", o.SegmentDuration, MinSegmentDuration, MaxSegmentDuration)
	case o.JitterWindow < 0 || o.JitterWindow > 5*time.Second:
		return o, fmt.Errorf("recording: Options.JitterWindow %v must be between 0 and 5s", o.JitterWindow)
	case o.Bitrate < 6000 || o.Bitrate > 510000:
		return o, fmt.Errorf("recording: Options.Bitrate %d is outside Opus's 6000-510000 bit/s", o.Bitrate)
	case o.Complexity < 1 || o.Complexity > 10:
		return o, fmt.Errorf("recording: Options.Complexity %d must be 1-10", o.Complexity)
	case o.CloseTimeout < 0:
		return o, fmt.Errorf("recording: Options.CloseTimeout %v is negative", o.CloseTimeout)
	}
	return o, nil
}

// Keys returns where the recording's objects go.
func (r *Recorder) Keys() Keys { return r.keys }

// CalleePacket records one Opus packet of the callee's voice as it was
// received, before decoding; arrived is when it arrived, so its audio
// ended then. pkt is copied.
func (r *Recorder) CalleePacket(arrived time.Time, pkt []byte) {
	r.enqueue(chunk{side: callee, at: arrived, arrived: true, pkt: pkt})
}

// AgentPacket records one Opus packet of the agent's voice as it was sent
// to the callee, silence included; sent is when it went out. Only packets
// actually sent belong here, so a reply cut by barge-in ends where the
// callee heard it stop. pkt is copied.
func (r *Recorder) AgentPacket(sent time.Time, pkt []byte) {
	r.enqueue(chunk{side: agent, at: sent, pkt: pkt})
}

func (r *Recorder) enqueue(c chunk) {
	if len(c.pkt) == 0 || r.closed.Load() {
		return
	}
	if r.queued.Add(1) > queueChunks {
		r.queued.Add(-1)
		if p, err := parseOpus(c.pkt, nil); err == nil {
			r.dropped[c.side].Add(int64(p.duration()))
		}
		return
	}
	c.pkt = append([]byte(nil), c.pkt...)
	r.in.mu.Lock()
	r.in.chunks = append(r.in.chunks, c)
	n := len(r.in.chunks)
	r.in.mu.Unlock()
	if n == drainAt {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// ErrIncomplete is returned by Finish when the recording is missing or
// incomplete, and ErrPending when storage has not taken all of it yet (the
// spool goes on); Result.Reason says why.
var (
	ErrIncomplete = errors.New("recording incomplete")
	ErrPending    = errors.New("recording pending upload")
)

// Finish ends the recording: the tail still in memory goes to the spool,
// which joins it with the stored segments into recordings/.../<attempt>.ogg
// and deletes the segments. Finish waits for that up to
// Options.CloseTimeout (or ctx's deadline, if sooner; pass a context that
// outlives the call's own cancellation). If storage has not taken it all
// by then, nothing is dropped: the spool keeps the audio and goes on after
// the call, and the Result says PendingUpload.
//
// A storage failure never panics or hangs: the error wraps ErrPending or
// ErrIncomplete and says why (for the call's recording_error). Stored may
// still be set then, for a final object that holds only part of the call.
// Later calls return the first outcome.
func (r *Recorder) Finish(ctx context.Context) (Result, error) {
	r.closeOnce.Do(func() { r.result = r.close(ctx) })
	switch r.result.State {
	case Complete:
		return r.result, nil
	case PendingUpload:
		return r.result, fmt.Errorf("recording: attempt %q: %w: %s", r.cfg.AttemptID, ErrPending, r.result.Reason)
	}
	return r.result, fmt.Errorf("recording: attempt %q: %w: %s", r.cfg.AttemptID, ErrIncomplete, r.result.Reason)
}

func (r *Recorder) close(ctx context.Context) Result {
	r.closed.Store(true)
	close(r.stopMix)
	mix := <-r.mixDone
	durationMS := mix.frames*frameMS + ms48(mix.unwritten)
	stopped := mix.stopped
	var tail *held
	if len(mix.tail) > 0 {
		var err error
		if tail, err = r.cfg.Spool.buf.hold(mix.tail); err != nil {
			stopped = fmt.Sprintf("the last %v of the recording could not be kept: %v",
				time.Duration(mix.tailFrames)*frameDuration, err)
			r.log.Warn("recording.stopped", zap.String("reason", stopped))
		}
	}
	r.job.finish(tail, mix.tailFrames, durationMS, stopped)
	limit := r.opts.CloseTimeout
	if d, ok := ctx.Deadline(); ok {
		limit = min(limit, time.Until(d))
	}
	res := r.job.wait(limit)
	res.Stats.DurationMS = mix.frames * frameMS
	res.Stats.CalleeDroppedMS = ms48(r.dropped[callee].Load())
	res.Stats.AgentDroppedMS = ms48(r.dropped[agent].Load())
	res.Stats.CalleeLateMS = ms48(mix.late[callee])
	res.Stats.AgentLateMS = ms48(mix.late[agent])
	res.Stats.RejectedChunks = mix.rejected
	res.Stats.InvalidPackets = mix.invalid
	return res
}

// metadata links every object to its call.
func metadata(cfg Config, part string) map[string]string {
	campaign := cfg.CampaignID
	if campaign == "" {
		campaign = InlineCampaign
	}
	return map[string]string{
		"attempt-id":     cfg.AttemptID,
		"campaign-id":    campaign,
		"env":            cfg.Env,
		"recording-part": part,
	}
}

// ms48 converts 48 kHz samples to milliseconds.
func ms48(samples int64) int64 { return samples / 48 }

// samples48 converts a duration to 48 kHz samples without overflowing, for
// any d (negative too: both terms truncate toward zero).
func samples48(d time.Duration) int64 {
	return int64(d/time.Second)*48000 + int64(d%time.Second)*48000/int64(time.Second)
}

func errString(err error) string {
	if err == nil {
		return "no error was reported"
	}
	return err.Error()
}
