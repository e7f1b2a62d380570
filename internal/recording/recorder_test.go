package recording

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// bargeInScript: the callee and the agent take turns; the agent's last
// reply (meant to run to 10 s) is cut at 8.2 s because the callee spoke
// over it from 8.0 s, so the player stopped sending it there.
var bargeInScript = callScript{
	Length: 11 * time.Second,
	Jitter: true,
	Bursts: []burst{
		{Side: callee, From: 1000 * time.Millisecond, To: 2000 * time.Millisecond, Freq: 440},
		{Side: agent, From: 2500 * time.Millisecond, To: 4300 * time.Millisecond, Freq: 880},
		{Side: callee, From: 5000 * time.Millisecond, To: 6500 * time.Millisecond, Freq: 440},
		{Side: agent, From: 7000 * time.Millisecond, To: 8200 * time.Millisecond, Freq: 880},
		{Side: callee, From: 8000 * time.Millisecond, To: 9500 * time.Millisecond, Freq: 440},
	},
}

func newTestRecorder(t *testing.T, st Storage, opts Options, onPartial func(context.Context, PartialInfo) error) *Recorder {
	t.Helper()
	start := testStart()
	if opts.Now == nil {
		opts.Now = frozenClock(start)
	}
	rec, err := New(Config{
		AttemptID:  "att-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")),
		CampaignID: "camp1",
		Env:        "test",
		Start:      start,
		Spool:      newSpool(t, st),
		OnPartial:  onPartial,
		Options:    opts,
	})
	require.NoError(t, err)
	return rec
}

func TestRecorderAlignsBothSidesAndCutsBargedInReply(t *testing.T) {
	st := newMemStorage(t)
	var reports partials
	// 2 s segments: the 11 s call is joined from five stored segments and
	// the tail.
	rec := newTestRecorder(t, st, Options{SegmentDuration: 2 * time.Second}, reports.record)
	bargeInScript.feed(t, rec, testStart())
	res, err := rec.Finish(context.Background())
	require.NoError(t, err)
	require.Equal(t, Complete, res.State)
	require.Nil(t, res.Partial)

	keys := rec.Keys()
	require.Equal(t, "recordings/test/camp1/2026/03/14/"+rec.cfg.AttemptID+".ogg", keys.Final)
	require.Equal(t, []string{keys.Final}, st.keys(), "only the final object is left")
	data, ok := st.get(keys.Final)
	require.True(t, ok)
	sum := sha256.Sum256(data)
	require.Equal(t, "mem-bucket", res.Stored.Bucket)
	require.Equal(t, keys.Final, res.Stored.Key)
	require.Equal(t, int64(len(data)), res.Stored.Bytes)
	require.Equal(t, hex.EncodeToString(sum[:]), res.Stored.SHA256)
	require.Equal(t, Format, res.Stored.Format)
	require.Equal(t, int64(11000), res.Stored.DurationMS)
	require.Equal(t, 5, res.Stats.Segments)
	require.Zero(t, res.Stats.CalleeDroppedMS+res.Stats.AgentDroppedMS+res.Stats.CalleeLateMS+res.Stats.AgentLateMS)

	meta := st.meta[keys.Final]
	require.Equal(t, ContentType, meta["content-type"])
	require.Equal(t, rec.cfg.AttemptID, meta["attempt-id"])
	require.Equal(t, "camp1", meta["campaign-id"])
	require.Equal(t, "final", meta["recording-part"])

	requireWellFormed(t, data, true)
	d := decodeOgg(t, data)
	require.InDelta(t, 11.0, d.duration().Seconds(), 0.03)
	requireAudioMatches(t, d, bargeInScript, bargeInScript.Length, 20*time.Millisecond)

	// Finishing again gives the same outcome.
	again, err := rec.Finish(context.Background())
	require.NoError(t, err)
	require.Equal(t, res, again)

	got := reports.all()
	require.Len(t, got, 5)
	for i, p := range got {
		require.Equal(t, i+1, p.Segments)
		require.Equal(t, int64(2000*(i+1)), p.DurationMS)
		require.Equal(t, keys.Partial, p.Prefix)
		require.Equal(t, keys.Final, p.FinalKey)
		require.Equal(t, "mem-bucket", p.Bucket)
	}
}

// The decoder drops exactly the encoder's lookahead (preSkip), so an onset
// lands on its sample: a wrong preSkip would move it by 6.5 ms.
func TestPreSkipLinesAudioUpWithItsStamp(t *testing.T) {
	st := newMemStorage(t)
	rec := newTestRecorder(t, st, Options{}, nil)
	s := callScript{Length: 2 * time.Second, Bursts: []burst{{Side: agent, From: time.Second, To: 1500 * time.Millisecond, Freq: 1000}}}
	s.feed(t, rec, testStart())
	res, err := rec.Finish(context.Background())
	require.NoError(t, err)
	data, _ := st.get(res.Stored.Key)
	d := decodeOgg(t, data)
	onset := -1
	for i, v := range d.right {
		if v > 2000 || v < -2000 {
			onset = i
			break
		}
	}
	require.InDelta(t, 48000, onset, 48*2, "first loud sample at %d (48 kHz), want 48000 ± 2 ms", onset)
}

// Input never blocks: past the queue's bound a packet is dropped and
// counted. Packets are copied, so the caller may reuse its buffer.
func TestInputsAreCopiedAndNeverBlock(t *testing.T) {
	st := newMemStorage(t)
	rec := newTestRecorder(t, st, Options{}, nil)
	// A full queue (as a starved mixer leaves it) refuses at once.
	rec.queued.Add(queueChunks)
	for range 3 {
		rec.AgentPacket(testStart(), silence)
	}
	rec.queued.Add(-queueChunks)
	s := callScript{Length: time.Second, Bursts: []burst{{Side: callee, To: time.Second, Freq: 440}}}
	send := newSender(t, senderKind{})
	buf := make([]byte, 0, maxPacket)
	for i := range 50 {
		at := time.Duration(i) * frameDuration
		buf = append(buf[:0], send.packet(t, s.pcm(callee, at, frameDuration))...)
		rec.CalleePacket(testStart().Add(at+frameDuration), buf)
		clear(buf) // the recorder must have its own copy
	}
	res, err := rec.Finish(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(60), res.Stats.AgentDroppedMS)
	require.Zero(t, res.Stats.CalleeDroppedMS)
	require.Zero(t, res.Stats.InvalidPackets)
	// After Close, input is ignored rather than queued or counted.
	rec.CalleePacket(testStart(), buf)
	data, _ := st.get(res.Stored.Key)
	d := decodeOgg(t, data)
	require.Len(t, activity(d.left), 1)
	require.InDelta(t, 1.0, activity(d.left)[0][1].Seconds(), 0.02)
	require.Empty(t, activity(d.right))
}

func TestBrokenTimestampsAndPacketsAreRejectedOrLate(t *testing.T) {
	st := newMemStorage(t)
	rec := newTestRecorder(t, st, Options{}, nil)
	rec.CalleePacket(testStart().Add(frameDuration), silence)
	rec.CalleePacket(testStart().Add(1000*time.Hour), silence) // far future
	rec.CalleePacket(time.Time{}, silence)                     // zero time
	rec.AgentPacket(testStart().Add(-time.Second), silence)    // before the answer: late
	rec.AgentPacket(testStart().Add(-10*time.Millisecond), silence)
	rec.CalleePacket(testStart(), []byte{0xfb})                                // code 3 without its frame count
	rec.AgentPacket(testStart(), []byte{0xf9, 1, 2, 3})                        // two equal frames in 3 bytes
	rec.AgentPacket(testStart(), []byte{0xfa, 200, 1, 2})                      // a first frame longer than the packet
	rec.CalleePacket(testStart(), append([]byte{0xf8}, make([]byte, 1300)...)) // a frame over 1275 bytes
	res, err := rec.Finish(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(2), res.Stats.RejectedChunks)
	require.Equal(t, int64(4), res.Stats.InvalidPackets)
	require.Equal(t, int64(20), res.Stats.AgentLateMS, "10 ms early rounds onto the first slot")
	require.Equal(t, int64(20), res.Stored.DurationMS)
}

func TestStorageBlipIsRetried(t *testing.T) {
	st := newMemStorage(t)
	st.failPut = func(key string, n int) error {
		if n <= 3 {
			return fmt.Errorf("injected put failure %d", n)
		}
		return nil
	}
	st.failUpload = func(key string, n int) error {
		if n == 1 {
			return errors.New("injected upload failure")
		}
		return nil
	}
	var reports partials
	rec := newTestRecorder(t, st, Options{SegmentDuration: 2 * time.Second}, reports.record)
	bargeInScript.feed(t, rec, testStart())
	res, err := rec.Finish(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{rec.Keys().Final}, st.keys())
	data, _ := st.get(rec.Keys().Final)
	requireAudioMatches(t, decodeOgg(t, data), bargeInScript, bargeInScript.Length, 20*time.Millisecond)
	require.Len(t, reports.all(), 5)
	require.Equal(t, int64(11000), res.Stored.DurationMS)
}

// storageSwitch is an outage: storage refuses every put and upload while
// it is down.
type storageSwitch struct{ down atomic.Bool }

func (s *storageSwitch) inject(st *memStorage, why string) {
	s.down.Store(true)
	fail := func(string, int) error {
		if s.down.Load() {
			return errors.New(why)
		}
		return nil
	}
	st.failPut, st.failUpload = fail, fail
}

// outage is a call recorded, at the frozen test clock, while storage is
// down: its spool (tuned by tune) and recorder, the script fed.
type outage struct {
	st     *memStorage
	down   storageSwitch
	spool  *Spool
	ledger *memLedger
	rec    *Recorder
}

func recordDuringOutage(t *testing.T, attempt, why string, script callScript, opts Options, tune func(*SpoolConfig)) *outage {
	t.Helper()
	o := &outage{st: newMemStorage(t), ledger: newMemLedger()}
	o.down.inject(o.st, why)
	o.spool = newSpool(t, o.st, func(c *SpoolConfig) {
		c.Ledger = o.ledger
		if tune != nil {
			tune(c)
		}
	})
	opts.Now = frozenClock(testStart())
	var err error
	o.rec, err = New(Config{AttemptID: attempt, CampaignID: "camp1", Env: "test", Start: testStart(), Spool: o.spool, Options: opts})
	require.NoError(t, err)
	script.feed(t, o.rec, testStart())
	return o
}

// Storage down from before the call to after the hang-up: Close returns
// in bounded time, saying the recording is pending upload and why, and
// drops nothing. Once storage is back the spool stores every segment and
// the tail, joins them, and settles the recording as complete: the whole
// call, as recorded.
func TestStorageDownPastTheHangUpIsStoredOnceItReturns(t *testing.T) {
	o := recordDuringOutage(t, "outage", "injected: storage unreachable", bargeInScript,
		Options{SegmentDuration: 2 * time.Second, CloseTimeout: time.Second}, nil)
	st, ledger, rec := o.st, o.ledger, o.rec
	done := make(chan struct{})
	var err error
	var res Result
	go func() {
		defer close(done)
		res, err = rec.Finish(context.Background())
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return within 30 s with a 1 s CloseTimeout")
	}
	require.ErrorIs(t, err, ErrPending)
	require.Equal(t, PendingUpload, res.State)
	require.Nil(t, res.Stored)
	require.Nil(t, res.Partial, "nothing was stored")
	require.Equal(t, int64(11000), res.DurationMS)
	require.Contains(t, res.Reason, "injected: storage unreachable")
	require.NotNil(t, res.Pending)
	require.Equal(t, "test-worker", res.Pending.Owner)
	require.Equal(t, int64(11000), res.Pending.DurationMS)
	require.Empty(t, st.keys())

	o.down.down.Store(false)
	settled := ledger.waitSettled(t, "outage", time.Minute)
	require.Equal(t, Complete, settled.State, settled.Reason)
	require.Zero(t, settled.LostMS)
	require.NotNil(t, settled.Stored)
	require.Equal(t, rec.Keys().Final, settled.Stored.Key)
	require.Equal(t, int64(11000), settled.Stored.DurationMS)
	require.Equal(t, []string{rec.Keys().Final}, st.keys(), "one final object, the segments deleted")
	data, _ := st.get(rec.Keys().Final)
	requireWellFormed(t, data, true)
	requireAudioMatches(t, decodeOgg(t, data), bargeInScript, bargeInScript.Length, 20*time.Millisecond)
	// Finishing is idempotent.
	res2, err2 := rec.Finish(context.Background())
	require.Equal(t, res, res2)
	require.Equal(t, err, err2)
}

// Storage that refuses for longer than GiveUpAfter ends the recording as
// lost, and says so, instead of holding it forever.
func TestStorageRefusingPastGiveUpEndsTheRecording(t *testing.T) {
	o := recordDuringOutage(t, "giveup", "injected: storage away for good", bargeInScript,
		Options{SegmentDuration: 2 * time.Second, CloseTimeout: 20 * time.Second},
		func(c *SpoolConfig) { c.GiveUpAfter = 300 * time.Millisecond })
	spool := o.spool
	res, err := o.rec.Finish(context.Background())
	require.ErrorIs(t, err, ErrIncomplete)
	require.Equal(t, Partial, res.State)
	require.Nil(t, res.Stored)
	require.Equal(t, int64(11000), res.LostMS)
	require.Contains(t, res.Reason, "storage refused it for 300ms")
	require.Contains(t, res.Reason, "injected: storage away for good")
	require.Zero(t, spool.Held(), "the spool let go of it")
	mem, disk, _ := spool.Usage()
	require.Zero(t, mem+disk)
}

// When the final object cannot be made (segments cannot be read back),
// Close leaves the recording pending with the segments noted; at
// shutdown the spool reports it partial, with the segments kept for a
// later join and the tail counted as lost. The presigned URL used to read
// the segments never leaks.
func TestFinalFailureKeepsSegmentsAndHidesURLs(t *testing.T) {
	st := newMemStorage(t)
	st.failGet = func(string) bool { return true }
	ledger := newMemLedger()
	var reports partials
	spool := newSpool(t, st, func(c *SpoolConfig) { c.Ledger = ledger })
	rec, err := New(Config{AttemptID: "final-fails", Env: "test", Start: testStart(), Spool: spool, OnPartial: reports.record,
		Options: Options{SegmentDuration: 2 * time.Second, CloseTimeout: time.Second, Now: frozenClock(testStart())}})
	require.NoError(t, err)
	bargeInScript.feed(t, rec, testStart())
	res, err := rec.Finish(context.Background())
	require.ErrorIs(t, err, ErrPending)
	require.Nil(t, res.Stored)
	require.NotNil(t, res.Partial)
	require.Equal(t, 5, res.Partial.Segments)
	require.Equal(t, int64(10000), res.Partial.DurationMS)
	require.Equal(t, rec.Keys().Partial, res.Partial.Prefix)
	require.Contains(t, res.Reason, "HTTP 503")
	require.NotContains(t, err.Error(), "Signature")
	require.Len(t, st.keys(), 5)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	report := spool.Shutdown(ctx)
	require.Equal(t, SpoolReport{Recordings: 1, LostMS: 1000}, report)
	settled := ledger.waitSettled(t, "final-fails", time.Second)
	require.Equal(t, Partial, settled.State)
	require.Equal(t, int64(1000), settled.LostMS, "the tail, held only in memory")
	require.NotNil(t, settled.Partial, "the stored segments stay noted for a later join")
	require.Equal(t, 5, settled.Partial.Segments)
	require.Contains(t, settled.Reason, "the worker stopped before storage came back")
	require.Contains(t, settled.Reason, "HTTP 503")
	require.NotContains(t, settled.Reason, "Signature")
	require.Len(t, st.keys(), 5)

	// A transport error (server gone) must not leak the URL either.
	st2 := newMemStorage(t)
	rec2 := newTestRecorder(t, st2, Options{SegmentDuration: 2 * time.Second, CloseTimeout: time.Second}, nil)
	bargeInScript.feedUntil(t, rec2, testStart(), 0, 5*time.Second)
	// Wait for the two segments to be stored before the server goes.
	require.Eventually(t, func() bool { return len(st2.keys()) == 2 }, 10*time.Second, 5*time.Millisecond)
	st2.srv.Close()
	_, err = rec2.Finish(context.Background())
	require.ErrorIs(t, err, ErrPending)
	require.Contains(t, err.Error(), "read segment")
	require.NotContains(t, err.Error(), "Signature")
	// That storage never comes back: stop the spool holding the recording
	// with a short budget, instead of at cleanup with the 10 s one, all of
	// which it would spend waiting.
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	rec2.cfg.Spool.Shutdown(ctx2)
}

// Past the spool's memory cap, audio is spilled to disk, sealed with the
// spool's in-memory key: no file holds the Ogg stream in the clear. Once
// storage is back the spilled audio is stored like the rest, and the
// files are gone.
func TestSpillToDiskIsEncryptedAndStillStored(t *testing.T) {
	dir := t.TempDir()
	// 2 s segments of about 6.5 kB: the first fits in memory, the rest
	// spill.
	o := recordDuringOutage(t, "spill", "injected: storage away", bargeInScript,
		Options{SegmentDuration: 2 * time.Second, CloseTimeout: 500 * time.Millisecond},
		func(c *SpoolConfig) { c.MemoryBytes, c.Dir = 10<<10, dir })
	st, ledger, spool, rec := o.st, o.ledger, o.spool, o.rec
	res, err := rec.Finish(context.Background())
	require.ErrorIs(t, err, ErrPending)
	require.Equal(t, PendingUpload, res.State)

	mem, disk, spilled := spool.Usage()
	t.Logf("held: %d bytes in memory, %d on disk, %d pieces spilled", mem, disk, spilled)
	require.LessOrEqual(t, mem, int64(10<<10), "memory stays under the cap")
	require.Positive(t, spilled)
	var files []string
	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return err
	}))
	require.Len(t, files, int(spilled))
	var onDisk int64
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		onDisk += int64(len(b))
		require.NotContains(t, string(b), "OggS", "%s holds the stream in the clear", f)
		info, err := os.Stat(f)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	}
	require.Greater(t, onDisk, disk, "each file carries a nonce and a tag")

	o.down.down.Store(false)
	settled := ledger.waitSettled(t, "spill", time.Minute)
	require.Equal(t, Complete, settled.State, settled.Reason)
	data, _ := st.get(rec.Keys().Final)
	requireWellFormed(t, data, true)
	requireAudioMatches(t, decodeOgg(t, data), bargeInScript, bargeInScript.Length, 20*time.Millisecond)
	mem, disk, _ = spool.Usage()
	require.Zero(t, mem+disk)
	for _, f := range files {
		require.NoFileExists(t, f)
	}
}

// A spilled file is bound to its name and to this process's key: a file
// moved, altered or read by another process's spool does not open.
func TestSpilledAudioOpensOnlyWhereItWasWritten(t *testing.T) {
	a, err := newBuffers(0, 1<<20, t.TempDir())
	require.NoError(t, err)
	b, err := newBuffers(0, 1<<20, t.TempDir())
	require.NoError(t, err)
	h1, err := a.hold([]byte("OggS first segment"))
	require.NoError(t, err)
	h2, err := a.hold([]byte("OggS second segment"))
	require.NoError(t, err)
	got, err := a.read(h1)
	require.NoError(t, err)
	require.Equal(t, "OggS first segment", string(got))

	_, err = b.read(h1)
	require.ErrorContains(t, err, "does not authenticate", "another key")
	other, err := os.ReadFile(h2.path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(h1.path, other, 0o600))
	_, err = a.read(h1)
	require.ErrorContains(t, err, "does not authenticate", "another file's contents")
	a.release(h1)
	a.release(h2)
	require.NoFileExists(t, h2.path)
	_, disk := a.usage()
	require.Zero(t, disk)
}

// Past both caps the recorder stops instead of growing; once storage is
// back the final object holds the audio up to the stop, and the outcome
// counts the rest as lost.
func TestSpoolFullStopsRecordingInsteadOfGrowing(t *testing.T) {
	// 1 s segments of about 3.5 kB (2.9, 3.8, 3.7, 3.4 kB for this script):
	// three fit in 13 kB, the fourth does not, and nothing may spill.
	script := callScript{Length: 8 * time.Second, Bursts: []burst{{Side: callee, From: 500 * time.Millisecond, To: 7 * time.Second, Freq: 440}}}
	o := recordDuringOutage(t, "full", "injected: storage away", script, Options{SegmentDuration: time.Second},
		func(c *SpoolConfig) { c.MemoryBytes, c.DiskBytes = 13<<10, 1 })
	st := o.st
	o.down.down.Store(false)
	res, err := o.rec.Finish(context.Background())
	require.ErrorIs(t, err, ErrIncomplete)
	require.Equal(t, Partial, res.State)
	require.Contains(t, res.Reason, "spool full")
	require.NotNil(t, res.Stored, "what was kept is still stored")
	require.Equal(t, 3, res.Stats.Segments)
	require.Equal(t, int64(3000), res.Stored.DurationMS)
	require.InDelta(t, 5000, res.LostMS, 300, "the call went on to 8 s")
	data, _ := st.get(res.Stored.Key)
	requireWellFormed(t, data, false)
	d := decodeOgg(t, data)
	require.InDelta(t, 3.0, d.duration().Seconds(), 0.03)
	requireAudioMatches(t, d, script, 3*time.Second, 20*time.Millisecond)
}

func TestNoAudioIsAFailureNotAnEmptyFile(t *testing.T) {
	st := newMemStorage(t)
	rec := newTestRecorder(t, st, Options{}, nil)
	res, err := rec.Finish(context.Background())
	require.ErrorIs(t, err, ErrIncomplete)
	require.Equal(t, "no audio reached the recorder", res.Reason)
	require.Empty(t, st.keys())
}

// A quiet stretch with no input at all still advances with the wall clock,
// so segments keep being sealed and a crash loses no more than usual.
func TestWallClockSealsSegmentsThroughSilence(t *testing.T) {
	st := newMemStorage(t)
	start := time.Now()
	var reports partials
	rec, err := New(Config{AttemptID: "quiet", Env: "test", Start: start, Spool: newSpool(t, st), OnPartial: reports.record,
		Options: Options{SegmentDuration: time.Second, JitterWindow: 100 * time.Millisecond}})
	require.NoError(t, err)
	rec.CalleePacket(start.Add(frameDuration), silence)
	require.Eventually(t, func() bool { return len(reports.all()) >= 1 }, 20*time.Second, 10*time.Millisecond)
	res, err := rec.Finish(context.Background())
	require.NoError(t, err)
	require.GreaterOrEqual(t, res.Stored.DurationMS, int64(1000))
	require.Contains(t, res.Stored.Key, "/inline/", "no campaign means an inline call")
}

func TestOptionsAndConfigValidation(t *testing.T) {
	st := newMemStorage(t)
	base := func() Config {
		return Config{AttemptID: "a1", Env: "test", Start: testStart(), Spool: newSpool(t, st)}
	}
	cases := map[string]func(*Config){
		"Spool":           func(c *Config) { c.Spool = nil },
		"AttemptID":       func(c *Config) { c.AttemptID = "" },
		"attempt":         func(c *Config) { c.AttemptID = "../etc" },
		"campaign":        func(c *Config) { c.CampaignID = "a/b" },
		"env":             func(c *Config) { c.Env = "" },
		"start time":      func(c *Config) { c.Start = time.Time{} },
		"SegmentDuration": func(c *Config) { c.Options.SegmentDuration = time.Minute },
		"JitterWindow":    func(c *Config) { c.Options.JitterWindow = -time.Second },
		"Bitrate":         func(c *Config) { c.Options.Bitrate = 1000 },
		"Complexity":      func(c *Config) { c.Options.Complexity = 11 },
	}
	for want, mutate := range cases {
		c := base()
		mutate(&c)
		_, err := New(c)
		require.ErrorContains(t, err, want)
	}
}

func TestKeysFor(t *testing.T) {
	k, err := KeysFor("production", "", "0af3", time.Date(2026, 1, 2, 23, 30, 0, 0, time.FixedZone("PST", -8*3600)))
	require.NoError(t, err)
	// The date is UTC: 23:30 PST on Jan 2 is Jan 3 in UTC.
	require.Equal(t, "recordings/production/inline/2026/01/03/0af3.ogg", k.Final)
	require.Equal(t, "recordings-partial/production/inline/2026/01/03/0af3/", k.Partial)
	require.Equal(t, "recordings-partial/production/inline/2026/01/03/0af3/000012.ogg", k.Segment(12))
}

// A worker dies holding a pending recording (its spool could not even
// write its report): once the note's lease lapses, another worker's sweep
// joins the segments that reached storage and counts the tail, which died
// with the first worker, as lost.
func TestSweepJoinsAPendingRecordingWhoseOwnerDied(t *testing.T) {
	st := newMemStorage(t)
	st.failUpload = func(string, int) error { return errors.New("injected: final upload refused") }
	dead := newMemLedger()
	dead.ended = false // the call document cannot be written either
	first := newSpool(t, st, func(c *SpoolConfig) { c.Ledger = dead })
	rec, err := New(Config{AttemptID: "orphan", Env: "test", Start: testStart(), Spool: first,
		Options: Options{SegmentDuration: 2 * time.Second, CloseTimeout: 500 * time.Millisecond, Now: frozenClock(testStart())}})
	require.NoError(t, err)
	bargeInScript.feed(t, rec, testStart())
	res, err := rec.Finish(context.Background())
	require.ErrorIs(t, err, ErrPending)
	require.Equal(t, 5, res.Partial.Segments)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	first.Shutdown(ctx)

	st.failUpload = nil
	ledger := newMemLedger()
	ledger.addOrphan(Orphan{AttemptID: "orphan", Partial: res.Partial, DurationMS: res.Pending.DurationMS})
	newSpool(t, st, func(c *SpoolConfig) { c.Ledger, c.SweepInterval = ledger, 50*time.Millisecond })
	got := ledger.waitSettled(t, "orphan", 30*time.Second)
	require.Equal(t, Partial, got.State)
	require.Equal(t, int64(1000), got.LostMS, "the last second was only in the dead worker's memory")
	require.Contains(t, got.Reason, "stopped before storing its last 1s")
	require.Equal(t, int64(10000), got.Stored.DurationMS)
	require.Equal(t, []string{rec.Keys().Final}, st.keys(), "joined, and the segments deleted")
	data, _ := st.get(rec.Keys().Final)
	requireWellFormed(t, data, true)
	requireAudioMatches(t, decodeOgg(t, data), bargeInScript, 10*time.Second, 20*time.Millisecond)
	meta := st.meta[rec.Keys().Final]
	require.Equal(t, "orphan", meta["attempt-id"])
	require.Equal(t, "final", meta["recording-part"])
}
