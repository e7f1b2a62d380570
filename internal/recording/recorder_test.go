package recording

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
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
		Storage:    st,
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
	require.False(t, res.Failed)
	require.Nil(t, res.Partial)

	keys := rec.Keys()
	require.Equal(t, "recordings/test/camp1/2026/03/14/"+rec.cfg.AttemptID+".ogg", keys.Final)
	require.Equal(t, []string{keys.Final}, st.keys(), "only the final object is left")
	data, ok := st.get(keys.Final)
	require.True(t, ok)
	sum := sha256.Sum256(data)
	require.Equal(t, "mem-bucket", res.Recording.Bucket)
	require.Equal(t, keys.Final, res.Recording.Key)
	require.Equal(t, int64(len(data)), res.Recording.Bytes)
	require.Equal(t, hex.EncodeToString(sum[:]), res.Recording.SHA256)
	require.Equal(t, Format, res.Recording.Format)
	require.Equal(t, int64(11000), res.Recording.DurationMS)
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

	// Close, the call flow's view, gives the same outcome once more.
	again, err := rec.Close(context.Background())
	require.NoError(t, err)
	require.Equal(t, res.Recording, again)

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
	data, _ := st.get(res.Recording.Key)
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

func TestInputsAreCopiedAndNeverBlock(t *testing.T) {
	st := newMemStorage(t)
	rec := newTestRecorder(t, st, Options{}, nil)
	// A chunk larger than the whole input queue is refused at once.
	rec.AgentPlayed(testStart(), make([]int16, 6*testRate))
	pcm := callScript{Bursts: []burst{{Side: callee, To: time.Second, Freq: 440}}}.pcm(callee, 0, testRate)
	rec.CalleeAudio(testStart(), pcm)
	clear(pcm) // the recorder must have its own copy
	res, err := rec.Finish(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(6000), res.Stats.AgentDroppedMS)
	require.Zero(t, res.Stats.CalleeDroppedMS)
	// After Close, input is ignored rather than queued or counted.
	rec.CalleeAudio(testStart(), pcm)
	data, _ := st.get(res.Recording.Key)
	d := decodeOgg(t, data)
	require.Len(t, activity(d.left), 1)
	require.InDelta(t, 1.0, activity(d.left)[0][1].Seconds(), 0.02)
}

func TestBrokenTimestampsAreRejectedOrLate(t *testing.T) {
	st := newMemStorage(t)
	rec := newTestRecorder(t, st, Options{}, nil)
	frame := make([]int16, 480)
	rec.CalleeAudio(testStart(), frame)
	rec.CalleeAudio(testStart().Add(1000*time.Hour), frame) // far future
	rec.CalleeAudio(time.Time{}, frame)                     // zero time
	rec.AgentPlayed(testStart().Add(-time.Second), frame)   // before the answer: late
	rec.AgentPlayed(testStart().Add(-10*time.Millisecond), frame)
	res, err := rec.Finish(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(2), res.Stats.RejectedChunks)
	require.Equal(t, int64(30), res.Stats.AgentLateMS)
	require.Equal(t, int64(20), res.Recording.DurationMS)
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
	require.Equal(t, int64(11000), res.Recording.DurationMS)
}

func TestStorageDownForTheWholeCallFailsInBoundedTime(t *testing.T) {
	st := newMemStorage(t)
	down := errors.New("injected: storage unreachable")
	st.failPut = func(string, int) error { return down }
	st.failUpload = func(string, int) error { return down }
	var reports partials
	rec := newTestRecorder(t, st, Options{SegmentDuration: 2 * time.Second, CloseTimeout: time.Second}, reports.record)
	bargeInScript.feed(t, rec, testStart())
	done := make(chan struct{})
	var res Result
	var err error
	go func() {
		defer close(done)
		res, err = rec.Finish(context.Background())
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return within 30 s with a 1 s CloseTimeout")
	}
	require.ErrorIs(t, err, ErrIncomplete)
	require.True(t, res.Failed)
	require.Nil(t, res.Recording)
	require.Nil(t, res.Partial, "nothing was stored")
	require.Contains(t, res.Reason, "could not be stored")
	require.Contains(t, res.Reason, "injected: storage unreachable")
	require.Empty(t, reports.all())
	require.Empty(t, st.keys())
	// Finishing is idempotent, and Close says the same.
	res2, err2 := rec.Finish(context.Background())
	require.Equal(t, res, res2)
	require.Equal(t, err, err2)
	recording, err3 := rec.Close(context.Background())
	require.Nil(t, recording)
	require.ErrorIs(t, err3, ErrIncomplete)
}

// When the final object cannot be made, the segments stay and the Result
// says where; the presigned URL used to read them never leaks.
func TestFinalFailureKeepsSegmentsAndHidesURLs(t *testing.T) {
	st := newMemStorage(t)
	st.failGet = func(string) bool { return true }
	var reports partials
	rec := newTestRecorder(t, st, Options{SegmentDuration: 2 * time.Second, CloseTimeout: time.Second}, reports.record)
	bargeInScript.feed(t, rec, testStart())
	res, err := rec.Finish(context.Background())
	require.ErrorIs(t, err, ErrIncomplete)
	require.Nil(t, res.Recording)
	require.NotNil(t, res.Partial)
	require.Equal(t, 5, res.Partial.Segments)
	require.Equal(t, int64(10000), res.Partial.DurationMS)
	require.Equal(t, rec.Keys().Partial, res.Partial.Prefix)
	require.Contains(t, res.Reason, "HTTP 503")
	require.NotContains(t, err.Error(), "Signature")
	require.Len(t, st.keys(), 5)

	// A transport error (server gone) must not leak the URL either.
	st2 := newMemStorage(t)
	rec2 := newTestRecorder(t, st2, Options{SegmentDuration: 2 * time.Second, CloseTimeout: time.Second}, nil)
	bargeInScript.feedUntil(t, rec2, testStart(), 0, 5*time.Second)
	// Wait for the two segments to be stored before the server goes.
	require.Eventually(t, func() bool { return len(st2.keys()) == 2 }, 10*time.Second, 5*time.Millisecond)
	st2.srv.Close()
	_, err = rec2.Finish(context.Background())
	require.ErrorIs(t, err, ErrIncomplete)
	require.Contains(t, err.Error(), "read segment")
	require.NotContains(t, err.Error(), "Signature")
}

// Past MaxPending the recorder stops instead of growing; once storage is
// back the final object holds the audio up to the stop, and says it is
// incomplete.
func TestMaxPendingStopsRecordingInsteadOfGrowing(t *testing.T) {
	st := newMemStorage(t)
	release := make(chan struct{})
	st.failPut = func(string, int) error {
		select {
		case <-release:
			return nil
		default:
			return errors.New("injected: storage away")
		}
	}
	// 1 s segments of about 4 kB (3.0, 4.2, 4.2, 3.8 kB for this script):
	// three fit in 13 kB, the fourth does not.
	rec := newTestRecorder(t, st, Options{SegmentDuration: time.Second, MaxPending: 13 << 10}, nil)
	script := callScript{Length: 8 * time.Second, Bursts: []burst{{Side: callee, From: 500 * time.Millisecond, To: 7 * time.Second, Freq: 440}}}
	script.feed(t, rec, testStart())
	close(release)
	res, err := rec.Finish(context.Background())
	require.ErrorIs(t, err, ErrIncomplete)
	require.Contains(t, res.Reason, "Options.MaxPending")
	require.Contains(t, res.Reason, "injected: storage away")
	require.NotNil(t, res.Recording, "what was kept is still stored")
	require.Equal(t, 3, res.Stats.Segments)
	require.Equal(t, int64(3000), res.Recording.DurationMS)
	data, _ := st.get(res.Recording.Key)
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
	rec, err := New(Config{AttemptID: "quiet", Env: "test", Start: start, Storage: st, OnPartial: reports.record,
		Options: Options{SegmentDuration: time.Second, JitterWindow: 100 * time.Millisecond}})
	require.NoError(t, err)
	rec.CalleeAudio(start, make([]int16, 480))
	require.Eventually(t, func() bool { return len(reports.all()) >= 1 }, 20*time.Second, 10*time.Millisecond)
	res, err := rec.Finish(context.Background())
	require.NoError(t, err)
	require.GreaterOrEqual(t, res.Recording.DurationMS, int64(1000))
	require.Contains(t, res.Recording.Key, "/inline/", "no campaign means an inline call")
}

func TestOptionsAndConfigValidation(t *testing.T) {
	st := newMemStorage(t)
	base := func() Config {
		return Config{AttemptID: "a1", Env: "test", Start: testStart(), Storage: st}
	}
	cases := map[string]func(*Config){
		"Storage":         func(c *Config) { c.Storage = nil },
		"AttemptID":       func(c *Config) { c.AttemptID = "" },
		"attempt":         func(c *Config) { c.AttemptID = "../etc" },
		"campaign":        func(c *Config) { c.CampaignID = "a/b" },
		"env":             func(c *Config) { c.Env = "" },
		"start time":      func(c *Config) { c.Start = time.Time{} },
		"SampleRate":      func(c *Config) { c.Options.SampleRate = 44100 },
		"SegmentDuration": func(c *Config) { c.Options.SegmentDuration = time.Minute },
		"JitterWindow":    func(c *Config) { c.Options.JitterWindow = -time.Second },
		"Bitrate":         func(c *Config) { c.Options.Bitrate = 1000 },
		"Complexity":      func(c *Config) { c.Options.Complexity = 11 },
		"MaxPending":      func(c *Config) { c.Options.MaxPending = -1 },
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
