package logging

// LogTail (Better Stack Logs) HTTP ingestion, as documented at
// https://betterstack.com/docs/logs/ingesting-data/http/logs.md (formerly
// https://betterstack.com/docs/logs/http-rest-api/), looked up 2026:
//
//   - POST https://$INGESTING_HOST/ . Older sources ingest at the shared host
//     https://in.logs.betterstack.com; newer sources show their own
//     "Ingesting host" in the source's Data ingestion tab, so the URL is
//     configurable (LOGTAIL_INGEST_URL) and the shared host is only the default.
//   - Authorization: Bearer $SOURCE_TOKEN.
//   - Content-Type application/json (one object or an array),
//     application/x-ndjson (one object per line) or application/msgpack.
//     We send NDJSON: zap already writes one JSON object per line, so a batch
//     body is the lines concatenated, and a batch splits at any line.
//   - Event time is the `dt` field: UNIX seconds/ms/ns or an RFC 3339 string;
//     an unparseable dt is stored as a string and the receive time is used.
//     We send RFC 3339 with nanoseconds.
//   - Limits: one request at most 10 MiB of *compressed* data (the response
//     table says 413 "over 20 MiB"); one record at most 10 MiB uncompressed,
//     under 100 KiB recommended; no limit on the number of requests. Limits
//     measured compressed mean gzip request bodies are expected, so we send
//     Content-Encoding: gzip (LogTailOptions.DisableGzip turns it off).
//   - Responses: 202 logged; 402 quota or spending limit reached ("Quota
//     exceeded"); 403 invalid source token; 406 body is not valid JSON or
//     MessagePack; 413 body too large. 429 is not documented for this
//     endpoint; we treat it (and 408, 5xx, network errors) as transient.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// DefaultLogTailURL is Better Stack's shared ingesting host. Sources created
// recently have their own host; set LogTailOptions.URL to it.
const DefaultLogTailURL = "https://in.logs.betterstack.com"

// LogTailOptions configures NewLogTail. Zero values take the defaults noted.
type LogTailOptions struct {
	// URL is the ingesting host (LOGTAIL_INGEST_URL); DefaultLogTailURL when empty.
	URL string
	// Token is the source token (LOGTAIL_SOURCE_TOKEN). Required: when no
	// token is configured the caller does not create a LogTail at all, and
	// logs go to stdout only.
	Token string

	// BufferBytes caps the memory held by lines waiting to ship, including
	// the batch being sent (default 8 MiB). When full, the oldest debug/info
	// lines are dropped first, then warn, then error.
	BufferBytes int
	// BatchLines and BatchBytes send a batch as soon as this many lines or
	// bytes (uncompressed) are waiting (defaults 1000 and 1 MiB). A single
	// line longer than BatchBytes is dropped and counted as too large.
	// BatchBytes may be at most half of BufferBytes.
	BatchLines int
	BatchBytes int
	// FlushInterval sends whatever is waiting at least this often (default 1 s).
	FlushInterval time.Duration

	// MinRetryBackoff and MaxRetryBackoff bound the exponential backoff, with
	// jitter, between attempts at a batch after a network error, 429, 5xx
	// or 402 (defaults 500 ms and 30 s).
	MinRetryBackoff time.Duration
	MaxRetryBackoff time.Duration

	// DropReportInterval is how often a `logtail.dropped` line reports drops
	// since the previous report, when there were any (default 1 min).
	DropReportInterval time.Duration
	// SyncTimeout bounds Sync, which zap calls without a context (default 2 s).
	// At shutdown call Close with the time that is left instead.
	SyncTimeout time.Duration

	// DisableGzip sends bodies uncompressed.
	DisableGzip bool
	// HTTPClient sends the requests (default: a client with a 10 s timeout).
	HTTPClient *http.Client
	// Stdout receives the shipper's own notices (403, drops, outages) as
	// JSON lines; they never go back into the LogTail buffer (default os.Stdout).
	Stdout io.Writer
	// Now is the clock for Retry-After dates and drop reports (default time.Now).
	Now func() time.Time
}

func (o *LogTailOptions) setDefaults() error {
	if o.Token == "" {
		return errors.New("logtail: Token (LOGTAIL_SOURCE_TOKEN) is empty; without a token, do not create a LogTail")
	}
	if o.URL == "" {
		o.URL = DefaultLogTailURL
	}
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("logtail: URL (LOGTAIL_INGEST_URL) %q must be an http(s) URL with a host", RedactURL(o.URL))
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.BufferBytes, 8<<20)
	def(&o.BatchLines, 1000)
	def(&o.BatchBytes, min(1<<20, o.BufferBytes/2))
	defDur(&o.FlushInterval, time.Second)
	defDur(&o.MinRetryBackoff, 500*time.Millisecond)
	defDur(&o.MaxRetryBackoff, 30*time.Second)
	defDur(&o.DropReportInterval, time.Minute)
	defDur(&o.SyncTimeout, 2*time.Second)
	if o.BatchBytes > o.BufferBytes/2 {
		return fmt.Errorf("logtail: BatchBytes (%d) must be at most half of BufferBytes (%d)", o.BatchBytes, o.BufferBytes)
	}
	if o.MinRetryBackoff > o.MaxRetryBackoff {
		return fmt.Errorf("logtail: MinRetryBackoff (%s) is above MaxRetryBackoff (%s)", o.MinRetryBackoff, o.MaxRetryBackoff)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// Why a line never reached LogTail.
const (
	causeBufferFull = iota // pushed out by newer or more important lines
	causeTooLarge          // longer than BatchBytes, or a lone line answered 413
	causeMalformed         // in a batch answered 406
	causeRejected          // 403/401 (token) or another status that retrying cannot fix
	causeShutdown          // still waiting when Close ran out of time, or logged after Close
	numCauses
)

const numLevels = int(zapcore.FatalLevel-zapcore.DebugLevel) + 1

func levelIndex(l zapcore.Level) int {
	return int(min(max(l, zapcore.DebugLevel), zapcore.FatalLevel) - zapcore.DebugLevel)
}

// LogTailStats are running totals since NewLogTail.
type LogTailStats struct {
	// Shipped lines were accepted by LogTail (202).
	Shipped uint64
	// Dropped counts, by level, every line that will never reach LogTail,
	// whatever the cause; the fields below break it down by cause.
	Dropped      map[zapcore.Level]uint64
	DroppedTotal uint64
	BufferFull   uint64 // made room for newer or more important lines
	TooLarge     uint64 // one line too big to send
	Malformed    uint64 // lines in batches answered 406
	Rejected     uint64 // 403 (bad token) and other statuses retrying cannot fix
	Abandoned    uint64 // unsent at Close, or logged after Close
	// Retries counts attempts repeated after a transient failure.
	Retries uint64
	// Batches counts requests answered 202.
	Batches uint64
	// BufferedBytes is what the buffer holds now (queued plus in flight);
	// PeakBufferedBytes the most it ever held. Both stay ≤ BufferBytes.
	BufferedBytes     int64
	PeakBufferedBytes int64
	// Stopped is set once LogTail refused the token; nothing ships after that.
	Stopped bool
}

// LogTail ships log lines to Better Stack over HTTP. Core() is the zap core
// to pass in Options.Sinks; a background shipper sends what it buffers.
// Writing never blocks on the network: a full buffer drops lines instead.
type LogTail struct {
	opts LogTailOptions // immutable after NewLogTail
	enc  zapcore.Encoder

	// stopped (token refused) and closed let Write drop without encoding.
	stopped atomic.Bool
	closed  atomic.Bool

	// mu guards the buffer and everything Flush waits on.
	mu            sync.Mutex
	queue         levelQueue
	seq           uint64 // last seq handed out
	inflightCost  int    // accounted bytes of the batch being sent
	inflightLines int
	inflightMin   uint64 // seq of its oldest line
	inflight      bool
	flushWaiters  int
	progress      chan struct{} // closed and replaced when lines leave, if flushWaiters > 0
	peakBuffered  int
	bufferedBytes atomic.Int64 // mirror of queue + in flight, for Stats without the lock

	wake       chan struct{} // nudges the shipper: a batch is ready or a Flush waits
	flushCalls atomic.Uint64 // lets one Flush cut a retry backoff short

	shipped, batches, retries atomic.Uint64
	dropped                   [numLevels]atomic.Uint64
	causes                    [numCauses]atomic.Uint64

	shipper   *shipper
	closeOnce sync.Once
	closeErr  error
}

// NewLogTail validates opts and starts the shipper. Close it at shutdown.
func NewLogTail(opts LogTailOptions) (*LogTail, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	ec := EncoderConfig()
	ec.TimeKey = "dt" // Better Stack's event-time field
	lt := &LogTail{
		opts:     opts,
		enc:      zapcore.NewJSONEncoder(ec),
		progress: make(chan struct{}),
		wake:     make(chan struct{}, 1),
	}
	lt.shipper = newShipper(lt)
	lt.shipper.start()
	return lt, nil
}

// Core is the zap core that feeds the buffer. It accepts every level; the
// logger in front of it (logging.New) applies LOG_LEVEL and redaction.
func (lt *LogTail) Core() zapcore.Core { return &logtailCore{lt: lt, enc: lt.enc} }

// logtailCore is used by pointer: CheckedEntry stores cores as interfaces,
// and a pointer converts without allocating on every log call.
type logtailCore struct {
	lt  *LogTail
	enc zapcore.Encoder // carries the fields added by With
}

func (c *logtailCore) Enabled(zapcore.Level) bool { return true }

func (c *logtailCore) With(fs []zapcore.Field) zapcore.Core {
	enc := c.enc.Clone()
	for _, f := range fs {
		f.AddTo(enc)
	}
	return &logtailCore{lt: c.lt, enc: enc}
}

func (c *logtailCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	return ce.AddCore(e, c)
}

func (c *logtailCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	lt := c.lt
	if lt.stopped.Load() || lt.closed.Load() {
		lt.countDrop(e.Level, causeOfRefusal(lt))
		return nil
	}
	buf, err := c.enc.EncodeEntry(e, fs)
	if err != nil {
		return fmt.Errorf("logtail: encoding %q: %w", e.Message, err)
	}
	line := make([]byte, buf.Len())
	copy(line, buf.Bytes())
	buf.Free()
	lt.enqueue(e.Level, line)
	if e.Level > zapcore.ErrorLevel {
		// DPanic/Panic/Fatal: the process may be about to die.
		_ = lt.Sync()
	}
	return nil
}

func (c *logtailCore) Sync() error { return c.lt.Sync() }

func causeOfRefusal(lt *LogTail) int {
	if lt.stopped.Load() {
		return causeRejected
	}
	return causeShutdown
}

func (lt *LogTail) countDrop(l zapcore.Level, cause int) {
	lt.dropped[levelIndex(l)].Add(1)
	lt.causes[cause].Add(1)
}

// enqueue adds a line, making room by dropping less important or older
// lines. It never blocks on the shipper.
func (lt *LogTail) enqueue(lvl zapcore.Level, b []byte) {
	l := qline{lvl: lvl, b: b}
	if len(b) > lt.opts.BatchBytes {
		lt.countDrop(lvl, causeTooLarge)
		return
	}
	lt.mu.Lock()
	if lt.stopped.Load() || lt.closed.Load() {
		lt.mu.Unlock()
		lt.countDrop(lvl, causeOfRefusal(lt))
		return
	}
	limit := lt.opts.BufferBytes - lt.inflightCost
	need := lt.queue.totalCost() + l.cost() - limit
	if need > 0 {
		class := classOf(lvl)
		if lt.queue.costUpTo(class) < need {
			// Everything queued is more important than this line, or
			// dropping it all would still not make room: drop the newcomer.
			lt.mu.Unlock()
			lt.countDrop(lvl, causeBufferFull)
			return
		}
		for need > 0 {
			old := lt.queue.evictLowest()
			need -= old.cost()
			lt.countDrop(old.lvl, causeBufferFull)
		}
		lt.signalLocked()
	}
	lt.seq++
	l.seq = lt.seq
	lt.queue.push(l)
	lt.noteBufferedLocked()
	ready := lt.queue.lines >= lt.opts.BatchLines || lt.queue.bytes >= lt.opts.BatchBytes
	lt.mu.Unlock()
	if ready {
		lt.kick()
	}
}

func (lt *LogTail) noteBufferedLocked() {
	n := lt.queue.totalCost() + lt.inflightCost
	lt.peakBuffered = max(lt.peakBuffered, n)
	lt.bufferedBytes.Store(int64(n))
}

// signalLocked wakes Flush callers after lines left the buffer.
func (lt *LogTail) signalLocked() {
	if lt.flushWaiters > 0 {
		close(lt.progress)
		lt.progress = make(chan struct{})
	}
}

func (lt *LogTail) kick() {
	select {
	case lt.wake <- struct{}{}:
	default:
	}
}

// pendingThroughLocked reports whether any line with seq ≤ target is still
// queued or in flight.
func (lt *LogTail) pendingThroughLocked(target uint64) bool {
	if s, ok := lt.queue.minSeq(); ok && s <= target {
		return true
	}
	return lt.inflight && lt.inflightMin <= target
}

// Flush returns once every line logged before the call has been shipped or
// dropped, or when ctx ends (then with an error saying how many wait).
func (lt *LogTail) Flush(ctx context.Context) error {
	lt.flushCalls.Add(1)
	lt.mu.Lock()
	target := lt.seq
	lt.flushWaiters++
	defer func() {
		lt.mu.Lock()
		lt.flushWaiters--
		lt.mu.Unlock()
	}()
	for {
		if !lt.pendingThroughLocked(target) {
			lt.mu.Unlock()
			return nil
		}
		ch := lt.progress
		lt.mu.Unlock()
		lt.kick()
		select {
		case <-ch:
		case <-ctx.Done():
			lt.mu.Lock()
			n := lt.queue.lines + lt.inflightLines
			lt.mu.Unlock()
			return fmt.Errorf("logtail: flush: %d lines still buffered: %w", n, ctx.Err())
		}
		lt.mu.Lock()
	}
}

// Sync flushes within SyncTimeout; zap calls it from Logger.Sync.
func (lt *LogTail) Sync() error {
	ctx, cancel := context.WithTimeout(context.Background(), lt.opts.SyncTimeout)
	defer cancel()
	return lt.Flush(ctx)
}

// Close flushes what is buffered until ctx ends, then stops the shipper.
// Lines still unsent, and lines logged afterwards, are counted as dropped.
// Give it what is left of SHUTDOWN_TIMEOUT after the worker has stopped.
func (lt *LogTail) Close(ctx context.Context) error {
	lt.closeOnce.Do(func() {
		lt.closeErr = lt.Flush(ctx)
		lt.shipper.shutdown()
		lt.mu.Lock()
		lt.closed.Store(true)
		lt.queue.drain(func(l qline) { lt.countDrop(l.lvl, causeShutdown) })
		lt.noteBufferedLocked()
		lt.signalLocked()
		lt.mu.Unlock()
		lt.shipper.reportDrops() // last word on what was lost
	})
	return lt.closeErr
}

// Stats returns running totals.
func (lt *LogTail) Stats() LogTailStats {
	s := LogTailStats{
		Shipped:       lt.shipped.Load(),
		Dropped:       make(map[zapcore.Level]uint64, numLevels),
		BufferFull:    lt.causes[causeBufferFull].Load(),
		TooLarge:      lt.causes[causeTooLarge].Load(),
		Malformed:     lt.causes[causeMalformed].Load(),
		Rejected:      lt.causes[causeRejected].Load(),
		Abandoned:     lt.causes[causeShutdown].Load(),
		Retries:       lt.retries.Load(),
		Batches:       lt.batches.Load(),
		BufferedBytes: lt.bufferedBytes.Load(),
		Stopped:       lt.stopped.Load(),
	}
	for i := range lt.dropped {
		if n := lt.dropped[i].Load(); n > 0 {
			s.Dropped[zapcore.DebugLevel+zapcore.Level(i)] = n
			s.DroppedTotal += n
		}
	}
	lt.mu.Lock()
	s.PeakBufferedBytes = int64(lt.peakBuffered)
	lt.mu.Unlock()
	return s
}

// takeBatch moves the next batch from the queue to "in flight". Unless
// force is set (timer, Flush), it waits for a full batch.
func (lt *LogTail) takeBatch(force bool) []qline {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if lt.queue.lines == 0 || lt.stopped.Load() {
		return nil
	}
	full := lt.queue.lines >= lt.opts.BatchLines || lt.queue.bytes >= lt.opts.BatchBytes
	if !force && !full && lt.flushWaiters == 0 {
		return nil
	}
	b := lt.queue.take(lt.opts.BatchLines, lt.opts.BatchBytes)
	lt.inflight, lt.inflightMin, lt.inflightCost, lt.inflightLines = true, b[0].seq, 0, len(b)
	for _, l := range b {
		lt.inflightCost += l.cost()
	}
	return b
}

// batchDone releases the in-flight batch's share of the buffer.
func (lt *LogTail) batchDone() {
	lt.mu.Lock()
	lt.inflight, lt.inflightCost, lt.inflightLines = false, 0, 0
	lt.noteBufferedLocked()
	lt.signalLocked()
	lt.mu.Unlock()
}

// stop is the 403 path: refuse new lines and drop what is buffered.
func (lt *LogTail) stop() {
	lt.mu.Lock()
	lt.stopped.Store(true)
	lt.queue.drain(func(l qline) { lt.countDrop(l.lvl, causeRejected) })
	lt.noteBufferedLocked()
	lt.signalLocked()
	lt.mu.Unlock()
}

func (lt *LogTail) dropLines(ls []qline, cause int) {
	for _, l := range ls {
		lt.countDrop(l.lvl, cause)
	}
}

// noticeLogger writes the shipper's own lines to Stdout only. It is built
// from a core that does not include the LogTail, so a notice can never
// re-enter the buffer it reports on.
func noticeLogger(w io.Writer) *zap.Logger {
	core := zapcore.NewCore(zapcore.NewJSONEncoder(EncoderConfig()), zapcore.Lock(zapcore.AddSync(w)), zapcore.DebugLevel)
	return zap.New(Redact(core)).With(zap.String("component", "logtail"))
}
