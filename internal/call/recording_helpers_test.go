package call_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/docshield/voice-worker/internal/bucket"
	"github.com/docshield/voice-worker/internal/call"
	"github.com/docshield/voice-worker/internal/realtime"
	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
	"github.com/docshield/voice-worker/internal/recording"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/docshield/voice-worker/internal/telephony/calleesim"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"gopkg.in/hraban/opus.v2"
)

// The recording tests run the call as the worker does, with the worker's
// recordings (Recordings: the spool and the recorder factory) writing to
// the devstack's MinIO, and check what it stored against what the
// simulated callee sent and heard.

// recordingEnv is the deployment environment in the recordings' keys.
const recordingEnv = "test"

// recordingSetup says where a recorded call's recording goes.
type recordingSetup struct {
	// storage is where the recorder writes; nil: the devstack's MinIO.
	storage *bucket.Client
	// segment is RECORDING_SEGMENT_DURATION; zero: the default.
	segment time.Duration
	// recordings is the worker's recording side, shared by the calls of
	// one simulated worker; nil: a fresh one over storage.
	recordings *call.Recordings
	// st and id are the database and the attempt; zero: a fresh database
	// and a unique id. The kill test's child process takes its parent's.
	st *store.Store
	id string
}

// recordedCall is a callEnv whose Runner records with the worker's
// recorders. (callEnv's own recorder field, the stand-in, stays nil.)
type recordedCall struct {
	*callEnv
	s3         *bucket.Client
	setup      recordingSetup
	recordings *call.Recordings

	mu       sync.Mutex // guards the fields below: set on the call's goroutines
	answered time.Time  // the recording's position 0
	keys     recording.Keys
	notes    []store.PartialRecording
}

// newRecordedCall builds the same servers and Runner as newCallEnv, with
// the worker's recorder factory instead of the stand-in.
func newRecordedCall(t testing.TB, sc scenario, rs recordingSetup) *recordedCall {
	t.Helper()
	if rs.st == nil {
		rs.st = openStore(t)
	}
	if rs.id == "" {
		rs.id = testenv.UniqueName(t)
	}
	if rs.storage == nil {
		rs.storage = minioClient(t, "")
	}
	e := &callEnv{st: rs.st, analyze: &enqueuer{}, id: rs.id, log: newLogBuffer(t)}
	e.room = telephony.RoomName(e.id)
	r := &recordedCall{callEnv: e, s3: rs.storage, setup: rs, recordings: rs.recordings}
	if r.recordings == nil {
		r.recordings = startRecordings(t, rs.storage, noteWatcher{Store: rs.st, r: r}, rs.segment, e.log.logger)
	}

	tcfg := telephony.Config{
		URL:         testenv.Get(t, "LIVEKIT_URL"),
		APIKey:      testenv.Get(t, "LIVEKIT_API_KEY"),
		APISecret:   testenv.Get(t, "LIVEKIT_API_SECRET"),
		CallerID:    callerID,
		RingTimeout: 2 * time.Second,
	}
	var err error
	e.rooms, err = telephony.NewRooms(tcfg, e.log.logger)
	require.NoError(t, err)
	if sc.model.ResponseDelayMS == 0 {
		sc.model.ResponseDelayMS = 100
	}
	e.sim = realtimesim.New(sc.model, realtimesim.WithLogger(e.log.logger))
	base, err := e.sim.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.sim.Close()) })
	e.dialer, err = calleesim.NewDialer(tcfg, calleesim.DialerOptions{
		Script: func(telephony.DialRequest) calleesim.Script { return sc.callee },
		Logger: e.log.logger,
	})
	require.NoError(t, err)
	t.Cleanup(e.dialer.Close)

	timers := sc.timers
	if timers.Silence == 0 {
		timers.Silence = time.Minute
	}
	if timers.ShutdownLine == 0 {
		timers.ShutdownLine = 5 * time.Second
	}
	e.runner, err = call.NewRunner(call.Options{
		Store: e.st, Rooms: e.rooms, Dialer: e.dialer, Telephony: tcfg,
		Realtime: realtime.Config{
			BaseURL: base, APIKey: realtimesim.DefaultAPIKey, HandshakeTimeout: wait,
			VAD: realtime.VAD{SilenceDurationMS: 300, PrefixPaddingMS: 100},
		},
		Prompts:    call.StorePrompts(e.st),
		Analyze:    e.analyze,
		Timers:     timers,
		LocalVAD:   sc.localVAD,
		Recordings: r.observe(r.recordings.Factory()),
		Logger:     e.log.logger,
	})
	require.NoError(t, err)
	e.handler = &call.Handler{Calls: e.st, Runner: e.runner, Owner: "test-worker"}
	return r
}

// startRecordings starts a worker's recording side over storage, as the
// daemon does (lease: call.DefaultLease); it is shut down when the test
// ends. tune adjusts the options (a small spool memory).
func startRecordings(t testing.TB, storage *bucket.Client, st call.RecordingStore, segment time.Duration, log *zap.Logger,
	tune ...func(*call.RecordingOptions)) *call.Recordings {
	t.Helper()
	o := call.RecordingOptions{Storage: storage, Store: st, Env: recordingEnv, Segment: segment,
		Owner: "test-worker/" + testenv.UniqueName(t), SpoolDir: t.TempDir(), Logger: log}
	for _, f := range tune {
		f(&o)
	}
	rs, err := call.NewRecordings(o)
	require.NoError(t, err)
	rs.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rs.Shutdown(ctx)
	})
	return rs
}

// observe wraps the worker's factory to learn the recording's position 0
// and keys; the recorders are the worker's own.
func (r *recordedCall) observe(f call.RecorderFactory) call.RecorderFactory {
	return func(ctx context.Context, claim store.Claim, c *store.Call, answeredAt time.Time) (call.Recorder, error) {
		rec, err := f(ctx, claim, c, answeredAt)
		if err != nil {
			return nil, err
		}
		keys, err := recording.KeysFor(recordingEnv, "", c.ID, answeredAt)
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		r.answered, r.keys = answeredAt, keys
		r.mu.Unlock()
		return rec, nil
	}
}

// noteWatcher is the store, plus a look at the call document right after
// each partial-recording note is written.
type noteWatcher struct {
	*store.Store
	r *recordedCall
}

func (w noteWatcher) RecordPartialRecording(ctx context.Context, c store.Claim, p store.PartialRecording) error {
	err := w.Store.RecordPartialRecording(ctx, c, p)
	if err == nil {
		w.r.readNote(ctx)
	}
	return err
}

// readNote keeps what the call document says right after a note was
// written.
func (r *recordedCall) readNote(ctx context.Context) {
	p, err := r.st.GetPartialRecording(ctx, r.id)
	if err != nil || p == nil {
		return // the test's checks of the notes then fail
	}
	r.mu.Lock()
	r.notes = append(r.notes, *p)
	r.mu.Unlock()
}

// started returns the recording's position 0 and keys; it fails the test
// if the call was never recorded.
func (r *recordedCall) started(t testing.TB) (time.Time, recording.Keys) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.False(t, r.answered.IsZero(), "the recorder was started")
	return r.answered, r.keys
}

func (r *recordedCall) partialNotes() []store.PartialRecording {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]store.PartialRecording(nil), r.notes...)
}

// ---- MinIO ----

// minioClient is a storage client for the devstack's MinIO; endpoint and
// bucket override the stack's (to make storage unreachable).
func minioClient(t testing.TB, endpoint string, bucketName ...string) *bucket.Client {
	t.Helper()
	env := testenv.S3(t)
	if endpoint == "" {
		endpoint = env.Endpoint
	}
	b := env.Bucket
	if len(bucketName) > 0 {
		b = bucketName[0]
	}
	c, err := bucket.New(context.Background(), bucket.Options{
		Region: env.Region, AccessKeyID: env.AccessKeyID, SecretAccessKey: env.SecretAccessKey,
		Bucket: b, Endpoint: endpoint,
	})
	require.NoError(t, err)
	return c
}

// download reads an object through a presigned URL, as an operator would.
func download(t testing.TB, st *bucket.Client, key string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
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

// listKeys lists the current objects under prefix in the stack's bucket.
// The storage client has no listing (the worker never lists), so this goes
// to S3 directly.
func listKeys(t testing.TB, prefix string) []string {
	t.Helper()
	env := testenv.S3(t)
	c := s3.New(s3.Options{
		Region:       env.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(env.AccessKeyID, env.SecretAccessKey, ""),
		BaseEndpoint: aws.String(env.Endpoint),
		UsePathStyle: true,
	})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var keys []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(env.Bucket), Prefix: aws.String(prefix)})
	for range 100 {
		if !p.HasMorePages() {
			break
		}
		page, err := p.NextPage(ctx)
		require.NoError(t, err)
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	sort.Strings(keys)
	return keys
}

// requireNoSegments checks that none of the segments a recording of
// durationMS had (at segment length, 0 the default) is left.
func requireNoSegments(t testing.TB, st *bucket.Client, keys recording.Keys, durationMS int64, segment time.Duration) {
	t.Helper()
	if segment == 0 {
		segment = recording.DefaultSegmentDuration
	}
	for n := range int(time.Duration(durationMS)*time.Millisecond/segment) + 2 {
		_, err := st.Head(context.Background(), keys.Segment(n))
		require.ErrorIs(t, err, bucket.ErrNotFound, "segment %d is left under the partial prefix", n)
	}
}

// deleteKeys removes objects the test left (segments of a killed call).
func deleteKeys(st *bucket.Client, keys []string) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for _, k := range keys {
		_ = st.Delete(ctx, k)
	}
}

// ---- decoding ----

// decodedRate is libopusfile's output rate.
const decodedRate = 48000

// stereo is a recording decoded by libopusfile (an implementation
// independent of the recorder's, which checks every page's CRC).
type stereo struct {
	left, right []int16
}

func decodeRecording(t testing.TB, data []byte) stereo {
	t.Helper()
	st, err := opus.NewStream(bytes.NewReader(data))
	require.NoError(t, err, "libopusfile refuses the stream")
	defer st.Close()
	var s stereo
	buf := make([]int16, 2*5760)
	for range 1 << 22 {
		n, err := st.Read(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		for i := range n {
			s.left = append(s.left, buf[2*i])
			s.right = append(s.right, buf[2*i+1])
		}
	}
	return s
}

func (s stereo) duration() time.Duration { return samplesAt(len(s.left), decodedRate) }

// audioSpan is a stretch of a recording, as offsets from its start.
type audioSpan struct{ from, to time.Duration }

func (s audioSpan) String() string { return s.from.String() + "-" + s.to.String() }

// soundThreshold is the 5 ms RMS above which a channel carries sound: far
// above Opus-coded silence and the other channel's leak (about -45 dB),
// far below the callee's tones and the simulated agent's voice (whose
// quietest syllable is about 1100).
const soundThreshold = 300

// maxDropout is the longest quiet stretch inside a side's speech that is
// taken as a dropout rather than a pause. Dropouts happen: at the
// recorder's 32 kbit/s and complexity 3, when one side starts loud over a
// quiet syllable of the other, Opus's coupled stereo can starve the quiet
// channel for 10-40 ms (replaying the same input with the callee muted, at
// 64 kbit/s, or at complexity 10 has none); and a turn whose first playout
// report comes before the loop has seen its PlaybackStarted is stamped a
// frame early, which the recorder's steering later corrects by opening a
// hole of that size. Neither moves where a side's speech starts or ends,
// which is what the recording promises to within 60 ms; the tests log
// them and bound their total.
const maxDropout = alignment

// channelSounds is where a channel carries sound, and the dropouts bridged.
type channelSounds struct {
	spans, dropouts []audioSpan
}

// dropped is the total length of the dropouts inside sp.
func (c channelSounds) dropped(sp audioSpan) time.Duration {
	var d time.Duration
	for _, h := range c.dropouts {
		if h.from >= sp.from && h.to <= sp.to {
			d += h.to - h.from
		}
	}
	return d
}

// sounds finds where ch carries sound, at 5 ms resolution. Blips under
// 20 ms (a codec's click at a tone's edge) are left out, and quiet
// stretches shorter than maxDropout inside sound are bridged.
func sounds(ch []int16) channelSounds { return soundsBridging(ch, maxDropout) }

// soundsBridging is sounds with quiet stretches shorter than bridge
// inside sound bridged (and counted as dropouts).
func soundsBridging(ch []int16, bridge time.Duration) channelSounds {
	const win = decodedRate * 5 / 1000
	var raw []audioSpan
	on := false
	for i := 0; i+win <= len(ch); i += win {
		loud := calleesim.RMS(ch[i:i+win]) > soundThreshold
		at := samplesAt(i, decodedRate)
		switch {
		case loud && !on:
			raw = append(raw, audioSpan{from: at})
			on = true
		case !loud && on:
			raw[len(raw)-1].to = at
			on = false
		}
	}
	if on {
		raw[len(raw)-1].to = samplesAt(len(ch), decodedRate)
	}
	var c channelSounds
	for _, sp := range raw {
		if sp.to-sp.from < 20*time.Millisecond {
			continue
		}
		if n := len(c.spans); n > 0 && sp.from-c.spans[n-1].to < bridge {
			c.dropouts = append(c.dropouts, audioSpan{from: c.spans[n-1].to, to: sp.from})
			c.spans[n-1].to = sp.to
			continue
		}
		c.spans = append(c.spans, sp)
	}
	return c
}

// requireFewDropouts logs a channel's dropouts and fails if those inside
// one stretch of speech reach the tolerance together: the stretch would
// then be missing audio, not just dipping for a moment.
func requireFewDropouts(t testing.TB, name string, c channelSounds) {
	t.Helper()
	if len(c.dropouts) > 0 {
		t.Logf("%s channel: dropouts inside speech at %v", name, c.dropouts)
	}
	for _, sp := range c.spans {
		require.Less(t, c.dropped(sp), maxDropout, "%s channel: dropouts %v inside %v", name, c.dropouts, sp)
	}
}

// segmentOf returns ch over sp.
func segmentOf(ch []int16, sp audioSpan) []int16 {
	a := min(int(sp.from*decodedRate/time.Second), len(ch))
	b := min(int(sp.to*decodedRate/time.Second), len(ch))
	return ch[a:b]
}

// purity is how much of ch's level over sp is the freq Hz tone (1: a pure
// tone, near 0: other sound).
func purity(ch []int16, sp audioSpan, freq float64) float64 {
	pcm := segmentOf(ch, sp)
	level := calleesim.RMS(pcm)
	if level == 0 {
		return 0
	}
	return calleesim.ToneLevel(pcm, freq, decodedRate) / level
}

func samplesAt(n, rate int) time.Duration {
	return time.Duration(int64(n) * int64(time.Second) / int64(rate))
}

// ---- what the callee sent and heard ----

// sentSpans are the callee's utterances as offsets from start: from when
// its first frame was sent, for the length of the audio it said (sent at
// real-time pace).
func sentSpans(said []calleesim.Utterance, lengths []time.Duration, start time.Time) []audioSpan {
	out := make([]audioSpan, len(said))
	for i, u := range said {
		out[i] = audioSpan{from: u.Start.Sub(start), to: u.Start.Sub(start) + lengths[i]}
	}
	return out
}

// heardSpans are the agent's stretches of speech the callee heard, as
// offsets from start. A stretch starts when its audio arrived: the stream
// runs at real time, so each of its frames tells when the stretch began
// (arrival less its place in the stretch), and the earliest of them is
// kept, so a frame a busy machine delivered late does not move it.
func heardSpans(rec *calleesim.Recording, start time.Time) []audioSpan {
	frames := rec.Frames()
	rate := rec.SampleRate()
	var out []audioSpan
	for _, s := range rec.Spans(200 * time.Millisecond) {
		began := s.Start
		for _, f := range frames {
			if f.Pos >= s.StartPos && f.Pos < s.EndPos {
				if b := f.At.Add(-samplesAt(f.Pos-s.StartPos, rate)); b.Before(began) {
					began = b
				}
			}
		}
		out = append(out, audioSpan{from: began.Sub(start), to: began.Sub(start) + samplesAt(s.EndPos-s.StartPos, rate)})
	}
	return out
}

// requireAligned checks that got matches want, stretch by stretch, within
// tol.
func requireAligned(t testing.TB, what string, want, got []audioSpan, tol time.Duration) {
	t.Helper()
	require.Len(t, got, len(want), "%s: recorded %v, want %v", what, got, want)
	for i := range want {
		require.InDelta(t, want[i].from.Seconds(), got[i].from.Seconds(), tol.Seconds(),
			"%s %d starts at %v in the recording, want %v (±%v)", what, i, got[i].from, want[i].from, tol)
		require.InDelta(t, want[i].to.Seconds(), got[i].to.Seconds(), tol.Seconds(),
			"%s %d ends at %v in the recording, want %v (±%v)", what, i, got[i].to, want[i].to, tol)
	}
}

// callTone is callee "speech" at a frequency none of the simulated agent's
// voice reaches (its harmonics stay under 600 Hz), so each channel's
// content can be told apart by pitch as well as by timing.
func callTone(freq float64, d time.Duration) []int16 { return calleesim.Tone(freq, d, rate, 0.3) }

// requireFinalRecording checks what every recorded call that ended must
// leave (requireStoredRecording), and that the recording runs from the
// answer to the hang-up. It returns the object decoded.
func (r *recordedCall) requireFinalRecording(t testing.TB, c *store.Call) stereo {
	t.Helper()
	s := r.requireStoredRecording(t, c)
	answered, _ := r.started(t)
	// Position 0 is the answer and the recording runs to the hang-up (the
	// margin covers the jitter window and the teardown).
	require.InDelta(t, c.EndedAt.Sub(answered).Seconds(), s.duration().Seconds(), 2)
	return s
}

// requireStoredRecording checks that the call document's recording names
// one encrypted, typed object linked to the attempt, whose bytes, sha256
// and duration it states, and says it is complete; no segment is left
// under the partial prefix and no note points at one. It returns the
// object decoded.
func (r *recordedCall) requireStoredRecording(t testing.TB, c *store.Call) stereo {
	t.Helper()
	answered, keys := r.started(t)
	rec := c.Recording
	require.NotNil(t, rec, "the call document has its recording")
	t.Cleanup(func() { deleteKeys(r.s3, []string{rec.Key}) })
	want, err := recording.KeysFor(recordingEnv, "", r.id, answered)
	require.NoError(t, err)
	require.Equal(t, want, keys)
	require.Equal(t, want.Final, rec.Key)
	require.Regexp(t, `^recordings/`+recordingEnv+`/inline/\d{4}/\d\d/\d\d/`+r.id+`\.ogg$`, rec.Key)
	require.Equal(t, r.s3.Bucket(), rec.Bucket)
	require.Equal(t, recording.Format, rec.Format)

	info, err := r.s3.Head(context.Background(), rec.Key)
	require.NoError(t, err)
	require.Equal(t, "AES256", info.SSE, "encrypted at rest")
	require.Equal(t, recording.ContentType, info.ContentType)
	require.Equal(t, r.id, info.Metadata["attempt-id"])
	require.Equal(t, recording.InlineCampaign, info.Metadata["campaign-id"])
	require.Equal(t, recordingEnv, info.Metadata["env"])
	data := download(t, r.s3, rec.Key)
	sum := sha256.Sum256(data)
	require.Equal(t, hex.EncodeToString(sum[:]), rec.SHA256)
	require.Equal(t, int64(len(data)), rec.Bytes)

	requireNoSegments(t, r.s3, keys, rec.DurationMS, r.setup.segment)
	note, err := r.st.GetPartialRecording(context.Background(), r.id)
	require.NoError(t, err)
	require.Nil(t, note, "the call document points at the final object only")
	require.Equal(t, store.RecordingComplete, c.RecordingStatus)
	require.Zero(t, c.RecordingLostMS)
	require.Nil(t, c.RecordingPending)

	s := decodeRecording(t, data)
	require.InDelta(t, float64(rec.DurationMS), float64(s.duration().Milliseconds()), 25, "the stated duration is the audio's")
	return s
}
