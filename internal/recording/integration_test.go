package recording

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/bucket"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/stretchr/testify/require"
)

// Integration tests against the devstack's MinIO, which enforces SSE-S3
// like AWS.

func minio(t testing.TB) *bucket.Client {
	t.Helper()
	env := testenv.S3(t)
	c, err := bucket.New(context.Background(), bucket.Options{
		Region: env.Region, AccessKeyID: env.AccessKeyID, SecretAccessKey: env.SecretAccessKey,
		Bucket: env.Bucket, Endpoint: env.Endpoint,
	})
	require.NoError(t, err)
	return c
}

// download reads an object through a presigned URL, as an operator would.
func download(t testing.TB, st *bucket.Client, key string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	u, err := st.PresignGet(ctx, key, time.Minute)
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s", key)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return b
}

// storedSegments downloads the segments under k in order until the first
// missing one.
func storedSegments(t testing.TB, st *bucket.Client, k Keys) [][]byte {
	t.Helper()
	var segs [][]byte
	for n := 0; n < 1000; n++ {
		_, err := st.Head(context.Background(), k.Segment(n))
		if err != nil {
			require.ErrorIs(t, err, bucket.ErrNotFound)
			break
		}
		segs = append(segs, download(t, st, k.Segment(n)))
	}
	return segs
}

func TestMinIORecordingIsEncryptedTwoChannelAndAligned(t *testing.T) {
	t.Parallel()
	st := minio(t)
	campaign := testenv.UniqueName(t)
	var mu sync.Mutex
	var reports []PartialInfo
	var segmentInfo []bucket.ObjectInfo
	onPartial := func(ctx context.Context, p PartialInfo) error {
		// What the call document would get, and the segment it points at.
		info, err := st.Head(ctx, p.Prefix+SegmentName(p.Segments-1))
		mu.Lock()
		defer mu.Unlock()
		reports = append(reports, p)
		segmentInfo = append(segmentInfo, info)
		return err
	}
	start := testStart()
	rec, err := New(Config{
		AttemptID: "att1", CampaignID: campaign, Env: "test", Start: start, Spool: newSpool(t, st), OnPartial: onPartial,
		Options: Options{SegmentDuration: 2 * time.Second, Now: frozenClock(start)},
	})
	require.NoError(t, err)
	bargeInScript.feed(t, rec, start)
	res, err := rec.Finish(context.Background())
	require.NoError(t, err)
	key := "recordings/test/" + campaign + "/2026/03/14/att1.ogg"
	t.Cleanup(func() { st.Delete(context.Background(), key) })
	require.Equal(t, key, res.Stored.Key)

	info, err := st.Head(context.Background(), key)
	require.NoError(t, err)
	require.Equal(t, "AES256", info.SSE)
	require.Equal(t, ContentType, info.ContentType)
	require.Equal(t, "att1", info.Metadata["attempt-id"])
	require.Equal(t, campaign, info.Metadata["campaign-id"])
	require.Equal(t, "test", info.Metadata["env"])

	data := download(t, st, key)
	sum := sha256.Sum256(data)
	require.Equal(t, res.Stored.Bytes, int64(len(data)))
	require.Equal(t, hex.EncodeToString(sum[:]), res.Stored.SHA256)
	require.Equal(t, st.Bucket(), res.Stored.Bucket)
	requireWellFormed(t, data, true)
	d := decodeOgg(t, data)
	require.InDelta(t, 11.0, d.duration().Seconds(), 0.03)
	requireAudioMatches(t, d, bargeInScript, bargeInScript.Length, 20*time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, reports, 5)
	for i, si := range segmentInfo {
		require.Equal(t, "AES256", si.SSE, "segment %d", i)
		require.Equal(t, ContentType, si.ContentType)
		require.Equal(t, "att1", si.Metadata["attempt-id"])
		require.Equal(t, fmt.Sprintf("segment %d", i), si.Metadata["recording-part"])
	}
	require.Equal(t, rec.Keys().Partial, reports[4].Prefix)
	require.Empty(t, storedSegments(t, st, rec.Keys()), "segments are deleted once joined")
}

func TestMinIOUnreachableLeavesTheRecordingPendingInBoundedTime(t *testing.T) {
	t.Parallel()
	env := testenv.S3(t)
	st, err := bucket.New(context.Background(), bucket.Options{
		Region: env.Region, AccessKeyID: env.AccessKeyID, SecretAccessKey: env.SecretAccessKey,
		Bucket: env.Bucket, Endpoint: fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t)),
	})
	require.NoError(t, err)
	start := testStart()
	spool := newSpool(t, st)
	rec, err := New(Config{AttemptID: "down", Env: "test", Start: start, Spool: spool,
		Options: Options{SegmentDuration: 2 * time.Second, CloseTimeout: 2 * time.Second, Now: frozenClock(start)}})
	require.NoError(t, err)
	bargeInScript.feed(t, rec, start) // the call goes on: feeding never blocks
	done := make(chan struct{})
	var res Result
	go func() {
		defer close(done)
		res, err = rec.Finish(context.Background())
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Close did not return within a minute with a 2 s CloseTimeout")
	}
	require.ErrorIs(t, err, ErrPending)
	require.Equal(t, PendingUpload, res.State)
	require.Nil(t, res.Stored)
	require.Contains(t, res.Reason, "storage has not taken 11s of the recording yet")
	require.Contains(t, res.Reason, "connection refused")
	require.Zero(t, res.Stats.CalleeDroppedMS+res.Stats.AgentDroppedMS)
	// Storage never comes back here: stop the spool holding the recording
	// with a short budget, instead of at cleanup with the 10 s one, all of
	// which it would spend waiting.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	spool.Shutdown(ctx)
}

// killScript is a ten-minute call: the callee speaks for 3 s every 10 s,
// the agent answers 5 s later.
func killScript() callScript {
	s := callScript{Length: 10 * time.Minute, Jitter: true}
	for at := time.Second; at < s.Length; at += 10 * time.Second {
		s.Bursts = append(s.Bursts,
			burst{Side: callee, From: at, To: at + 3*time.Second, Freq: 440},
			burst{Side: agent, From: at + 5*time.Second, To: at + 8*time.Second, Freq: 880})
	}
	return s
}

const killChildEnv = "RECORDING_KILL_CHILD_CAMPAIGN"

// TestKillChild is the worker that gets killed: it records killScript at
// 20 times real time with the default 30 s segments, printing "upto <ms>"
// before it feeds audio up to that point and "partial <segments>
// <duration_ms> <prefix>" on every OnPartial.
func TestKillChild(t *testing.T) {
	campaign := os.Getenv(killChildEnv)
	if campaign == "" {
		t.Skip("run by TestKillMidCallLeavesAtMostASegmentMissing")
	}
	st := minio(t)
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
	}
	start := time.Now()
	rec, err := New(Config{AttemptID: "killed", CampaignID: campaign, Env: "test", Start: start, Spool: newSpool(t, st),
		OnPartial: func(_ context.Context, p PartialInfo) error {
			say("partial %d %d %s", p.Segments, p.DurationMS, p.Prefix)
			return nil
		}})
	require.NoError(t, err)
	s := killScript()
	pace := time.NewTicker(50 * time.Millisecond) // one second of audio each
	defer pace.Stop()
	for at := time.Duration(0); at < s.Length; at += time.Second {
		<-pace.C
		say("upto %d", (at + time.Second).Milliseconds())
		s.feedUntil(t, rec, start, at, at+time.Second)
	}
	t.Fatal("the parent should have killed this process before the call ended")
}

func TestKillMidCallLeavesAtMostASegmentMissing(t *testing.T) {
	t.Parallel()
	st := minio(t)
	campaign := testenv.UniqueName(t)

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute) // the child encodes at 20 times real time: slow under -race on a starved machine
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), killChildEnv+"="+campaign)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	// The worst moment to die is just before the next segment is sealed:
	// once three segments (90 s) are stored, kill when the child is about
	// to feed 118 s.
	var upto time.Duration
	var lastPartial []string
	killed := false
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		f := strings.Fields(lines.Text())
		switch {
		case len(f) == 2 && f[0] == "upto":
			ms, err := strconv.Atoi(f[1])
			require.NoError(t, err)
			upto = time.Duration(ms) * time.Millisecond
		case len(f) == 4 && f[0] == "partial":
			lastPartial = f
		}
		// At least three: on a starved machine the job may store two
		// segments before it reports, and report only the later count.
		if !killed && lastPartial != nil && atLeast(lastPartial[1], 3) && upto >= 118*time.Second {
			require.NoError(t, cmd.Process.Kill()) // SIGKILL: no deferred code runs
			killed = true
		}
	}
	// Everything the child printed before it died has been read, so upto
	// is the most audio it can have fed.
	_ = cmd.Wait()
	require.True(t, killed, "the child never reached the kill point: it fed up to %s, last reported %v", upto, lastPartial)
	require.NotNil(t, lastPartial)
	// The child's start date names the prefix; take it from the report.
	keys := Keys{Partial: lastPartial[3]}
	require.Regexp(t, `^recordings-partial/test/`+campaign+`/\d{4}/\d\d/\d\d/killed/$`, keys.Partial,
		"OnPartial reported where the segments are")
	t.Cleanup(func() {
		for n := range 100 {
			st.Delete(context.Background(), keys.Segment(n))
		}
	})

	reported, _ := strconv.Atoi(lastPartial[1])
	segs := storedSegments(t, st, keys)
	require.GreaterOrEqual(t, len(segs), reported)
	stream := bytes.Join(segs, nil)
	requireWellFormed(t, stream, false)
	d := decodeOgg(t, stream)
	t.Logf("killed after feeding at most %v; %d segments hold %v", upto, len(segs), d.duration())
	require.GreaterOrEqual(t, d.duration(), upto-60*time.Second, "more than 60 s of audio lost")
	requireAudioMatches(t, d, killScript(), d.duration(), 20*time.Millisecond)

	// A spool's sweep, told of the orphan as the call document would tell
	// it, joins the segments into the final object, sealed as a stream's
	// end, and deletes them.
	keys.Final = strings.Replace(strings.TrimSuffix(keys.Partial, "/"), PartialPrefix, FinalPrefix, 1) + ".ogg"
	t.Cleanup(func() { st.Delete(context.Background(), keys.Final) })
	ledger := newMemLedger()
	ledger.addOrphan(Orphan{AttemptID: "killed", Partial: &PartialInfo{Bucket: st.Bucket(), Prefix: keys.Partial,
		Segments: reported, FinalKey: keys.Final}})
	newSpool(t, st, func(c *SpoolConfig) { c.Ledger, c.SweepInterval = ledger, 100*time.Millisecond })
	res := ledger.waitSettled(t, "killed", time.Minute)
	require.Equal(t, Partial, res.State, "the audio after the last segment is gone")
	require.Zero(t, res.LostMS, "how much is not known")
	require.Contains(t, res.Reason, "stopped mid-call")
	require.NotNil(t, res.Stored)
	require.Equal(t, keys.Final, res.Stored.Key)
	final := download(t, st, keys.Final)
	lastLen := len(segs[len(segs)-1])
	require.Len(t, final, len(stream))
	require.Equal(t, stream[:len(stream)-lastLen], final[:len(final)-lastLen], "the segments, in order")
	requireWellFormed(t, final, true)
	require.InDelta(t, d.duration().Milliseconds(), res.Stored.DurationMS, 20)
	sum := sha256.Sum256(final)
	require.Equal(t, hex.EncodeToString(sum[:]), res.Stored.SHA256)
	require.Empty(t, storedSegments(t, st, keys), "segments are deleted once joined")
	info, err := st.Head(context.Background(), keys.Final)
	require.NoError(t, err)
	require.Equal(t, "AES256", info.SSE)
	require.Equal(t, "killed", info.Metadata["attempt-id"])
	require.Equal(t, campaign, info.Metadata["campaign-id"])
}

// atLeast reports whether the decimal count s is at least n.
func atLeast(s string, n int) bool {
	v, err := strconv.Atoi(s)
	return err == nil && v >= n
}
