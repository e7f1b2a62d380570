package recording

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/bucket"
	"github.com/stretchr/testify/require"
	"gopkg.in/hraban/opus.v2"
)

// ---- simulated calls ----

// burst is a tone one side sends over [From, To) of the call.
type burst struct {
	Side     int
	From, To time.Duration
	Freq     float64
}

// callScript is a simulated call: bursts of tone on each side, sent as
// Opus packets as the telephony stack sends them (20 ms, mono, unless
// Senders says otherwise). The callee sends packets all call long (silence
// between bursts), stamped on arrival with jitter and an occasional stall
// released as a burst of packets; the agent sends packets only while it
// speaks (its silence is left to the recorder), stamped when sent, as the
// player's pacer does.
type callScript struct {
	Length time.Duration
	Bursts []burst
	// Jitter adds arrival delays to the callee's stamps.
	Jitter bool
	// Senders are how each side's encoder packs its voice.
	Senders [2]senderKind
}

// senderKind is how a side's encoder packs its voice.
type senderKind struct {
	// Frame is the audio per packet; 0 means 20 ms.
	Frame time.Duration
	// LowDelay makes CELT-only packets: a 40 ms packet holds two 20 ms
	// frames (VoIP makes one 40 ms SILK frame).
	LowDelay bool
	Stereo   bool
}

func (k senderKind) frame() time.Duration { return cmp.Or(k.Frame, 20*time.Millisecond) }

const testRate = 24000

// feed plays the script into rec much faster than real time, in the order
// a live call would deliver it.
func (s callScript) feed(t testing.TB, rec *Recorder, start time.Time) {
	s.feedUntil(t, rec, start, 0, s.Length)
}

func (s callScript) feedUntil(t testing.TB, rec *Recorder, start time.Time, from, to time.Duration) {
	const step = 10 * time.Millisecond // divides every packet length used
	send := sendersOf(t, rec, s.Senders)
	var stalled [][]byte // callee packets held back by a stall
	defer func() {
		// A stall that outlasts this stretch ends with it.
		for _, p := range stalled {
			rec.CalleePacket(start.Add(to), p)
		}
	}()
	for t0 := from; t0 < to; t0 += step {
		if t0%(500*time.Millisecond) == 0 {
			waitForMixer(t, rec)
		}
		if f := s.Senders[callee].frame(); t0%f == 0 {
			// Callee: arrival 0-15 ms late; every 3 s a 60 ms stall
			// releases four packets at once.
			arrival := t0 + f
			pkt := send[callee].packet(t, s.pcm(callee, t0, f))
			if s.Jitter {
				arrival += time.Duration((int(t0/f)*7919)%16) * time.Millisecond
				if t0%(3*time.Second) >= 3*time.Second-60*time.Millisecond {
					stalled = append(stalled, pkt)
					pkt = nil
				} else {
					for _, p := range stalled {
						rec.CalleePacket(start.Add(arrival), p)
					}
					stalled = stalled[:0]
				}
			}
			if pkt != nil {
				rec.CalleePacket(start.Add(arrival), pkt)
			}
		}
		if f := s.Senders[agent].frame(); t0%f == 0 {
			// The agent's encoder runs all along, as the player's does.
			pkt := send[agent].packet(t, s.pcm(agent, t0, f))
			if s.overlaps(agent, t0, t0+f) {
				rec.AgentPacket(start.Add(t0), pkt)
			}
		}
	}
}

// sender is one side's Opus encoder, set up as the telephony stack's
// (mono, 24 kHz, VoIP, 20 ms packets) unless its kind says otherwise.
type sender struct {
	kind senderKind
	enc  *opus.Encoder
	buf  []byte
}

func newSender(t testing.TB, kind senderKind) *sender {
	app, channels := opus.AppVoIP, 1
	if kind.LowDelay {
		app = opus.AppRestrictedLowdelay
	}
	if kind.Stereo {
		channels = 2
	}
	enc, err := opus.NewEncoder(testRate, channels, app)
	require.NoError(t, err)
	require.NoError(t, enc.SetComplexity(5))
	return &sender{kind: kind, enc: enc, buf: make([]byte, maxPacket)}
}

// packet encodes mono pcm (both channels alike for a stereo sender).
func (s *sender) packet(t testing.TB, pcm []int16) []byte {
	if s.kind.Stereo {
		st := make([]int16, 2*len(pcm))
		for i, v := range pcm {
			st[2*i], st[2*i+1] = v, v
		}
		pcm = st
	}
	n, err := s.enc.Encode(pcm, s.buf)
	require.NoError(t, err)
	return append([]byte(nil), s.buf[:n]...)
}

// senders keeps each recorder's two encoders, so a call fed in stretches
// is one stream per side, as a live call's is.
var senders sync.Map // *Recorder → *[2]*sender

func sendersOf(t testing.TB, rec *Recorder, kinds [2]senderKind) *[2]*sender {
	if s, ok := senders.Load(rec); ok {
		return s.(*[2]*sender)
	}
	s := &[2]*sender{newSender(t, kinds[callee]), newSender(t, kinds[agent])}
	senders.Store(rec, s)
	return s
}

// waitForMixer lets the mixer catch up: audio fed faster than real time
// would otherwise overflow the input queue, which is sized for live calls.
// A backlog of drainAt wakes the mixer, so this rarely waits.
func waitForMixer(t testing.TB, rec *Recorder) {
	deadline := time.Now().Add(30 * time.Second)
	for rec.queued.Load() > queueChunks/2 {
		if time.Now().After(deadline) {
			t.Fatalf("the mixer did not drain its input queue within 30 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// pcm is side's audio for d from t: its tone where a burst is, silence
// elsewhere.
func (s callScript) pcm(side int, t, d time.Duration) []int16 {
	out := make([]int16, int64(testRate)*int64(d)/int64(time.Second))
	for k := range out {
		ts := t + time.Duration(k)*time.Second/testRate
		for _, b := range s.Bursts {
			if b.Side == side && ts >= b.From && ts < b.To {
				out[k] = int16(8000 * math.Sin(2*math.Pi*b.Freq*ts.Seconds()))
			}
		}
	}
	return out
}

// ---- decoding and checking ----

// decoded is a recording decoded by libopusfile, an implementation
// independent of ours that checks every page's CRC and sequence.
type decoded struct {
	left, right []float64 // 48 kHz
}

func decodeOgg(t testing.TB, data []byte) decoded {
	t.Helper()
	st, err := opus.NewStream(bytes.NewReader(data))
	require.NoError(t, err, "libopusfile refuses the stream")
	defer st.Close()
	var d decoded
	buf := make([]int16, 2*5760)
	for range 1 << 22 {
		n, err := st.Read(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		for i := range n {
			d.left = append(d.left, float64(buf[2*i]))
			d.right = append(d.right, float64(buf[2*i+1]))
		}
	}
	return d
}

func (d decoded) duration() time.Duration {
	return time.Duration(len(d.left)) * time.Second / 48000
}

// activity returns the intervals (5 ms resolution) where ch is louder than
// a quiet tone: what a listener would hear as sound. Blips under 20 ms are
// left out: the test tones start with a full-scale step, and the codec's
// stereo coding smears that click into the other channel for one 5 ms
// window (speech does not start with a step).
func activity(ch []float64) [][2]time.Duration {
	var out [][2]time.Duration
	for _, iv := range rawActivity(ch) {
		if iv[1]-iv[0] >= 20*time.Millisecond {
			out = append(out, iv)
		}
	}
	return out
}

func rawActivity(ch []float64) [][2]time.Duration {
	const win = 240 // 5 ms at 48 kHz
	var out [][2]time.Duration
	on := false
	for i := 0; i+win <= len(ch); i += win {
		var e float64
		for _, v := range ch[i : i+win] {
			e += v * v
		}
		loud := math.Sqrt(e/win) > 1000
		at := time.Duration(i) * time.Second / 48000
		switch {
		case loud && !on:
			out = append(out, [2]time.Duration{at, 0})
			on = true
		case !loud && on:
			out[len(out)-1][1] = at
			on = false
		}
	}
	if on {
		out[len(out)-1][1] = time.Duration(len(ch)) * time.Second / 48000
	}
	return out
}

func rms(ch []float64, from, to time.Duration) float64 {
	a, b := int(from*48000/time.Second), int(to*48000/time.Second)
	b = min(b, len(ch))
	if a >= b {
		return 0
	}
	var e float64
	for _, v := range ch[a:b] {
		e += v * v
	}
	return math.Sqrt(e / float64(b-a))
}

// requireAudioMatches checks each side's channel: sound exactly where the
// script's bursts are (to within tol), silence elsewhere, and the other
// side's tone well below its own level.
func requireAudioMatches(t *testing.T, d decoded, s callScript, upTo time.Duration, tol time.Duration) {
	t.Helper()
	chans := [2][]float64{d.left, d.right}
	names := [2]string{"left (callee)", "right (agent)"}
	for side := range 2 {
		var want [][2]time.Duration
		for _, b := range s.Bursts {
			if b.Side == side && b.From < upTo {
				want = append(want, [2]time.Duration{b.From, min(b.To, upTo)})
			}
		}
		sort.Slice(want, func(i, j int) bool { return want[i][0] < want[j][0] })
		got := activity(chans[side])
		if upTo < s.Length {
			// A cut recording may end inside a burst.
			for i := range got {
				got[i][1] = min(got[i][1], upTo)
			}
		}
		require.Len(t, got, len(want), "%s: sound at %v, want %v", names[side], got, want)
		for i := range want {
			require.InDelta(t, want[i][0].Seconds(), got[i][0].Seconds(), tol.Seconds(), "%s burst %d starts at %v, want %v", names[side], i, got[i][0], want[i][0])
			require.InDelta(t, want[i][1].Seconds(), got[i][1].Seconds(), tol.Seconds(), "%s burst %d ends at %v, want %v", names[side], i, got[i][1], want[i][1])
			// The other channel during the interior of this burst, where
			// the other side is silent, carries almost nothing.
			mid := [2]time.Duration{want[i][0] + 50*time.Millisecond, want[i][1] - 50*time.Millisecond}
			if mid[1] > mid[0] && !s.overlaps(1-side, mid[0], mid[1]) {
				own, other := rms(chans[side], mid[0], mid[1]), rms(chans[1-side], mid[0], mid[1])
				require.Less(t, other, own/30, "%s burst %d leaks into the other channel", names[side], i)
			}
		}
	}
}

func (s callScript) overlaps(side int, from, to time.Duration) bool {
	for _, b := range s.Bursts {
		if b.Side == side && b.From < to && b.To > from {
			return true
		}
	}
	return false
}

// oggPage is one parsed page.
type oggPage struct {
	flags   byte
	granule uint64
	serial  uint32
	seq     uint32
	packets [][]byte
}

// parseOgg splits a stream into pages, checking capture patterns, CRCs and
// that each page ends on a packet boundary (the writer never splits one).
func parseOgg(t testing.TB, data []byte) []oggPage {
	t.Helper()
	var pages []oggPage
	for len(data) > 0 {
		require.GreaterOrEqual(t, len(data), 27, "truncated page header")
		require.Equal(t, "OggS", string(data[:4]))
		nseg := int(data[26])
		require.GreaterOrEqual(t, len(data), 27+nseg)
		lacing := data[27 : 27+nseg]
		size := 0
		for _, l := range lacing {
			size += int(l)
		}
		total := 27 + nseg + size
		require.GreaterOrEqual(t, len(data), total, "truncated page body")
		page := append([]byte(nil), data[:total]...)
		crc := binary.LittleEndian.Uint32(page[22:])
		binary.LittleEndian.PutUint32(page[22:], 0)
		require.Equal(t, crc, oggChecksum(page), "page %d CRC", len(pages))
		p := oggPage{
			flags:   data[5],
			granule: binary.LittleEndian.Uint64(data[6:]),
			serial:  binary.LittleEndian.Uint32(data[14:]),
			seq:     binary.LittleEndian.Uint32(data[18:]),
		}
		body := data[27+nseg : total]
		var pkt []byte
		for i, l := range lacing {
			pkt = append(pkt, body[:l]...)
			body = body[l:]
			if l < 255 {
				p.packets = append(p.packets, pkt)
				pkt = nil
			} else {
				require.Less(t, i, len(lacing)-1, "page %d ends inside a packet", len(pages))
			}
		}
		pages = append(pages, p)
		data = data[total:]
	}
	return pages
}

// requireWellFormed checks the stream's structure: OpusHead and OpusTags
// alone on the first two pages, consecutive sequence numbers, one serial,
// granules that grow by 960 per packet, BOS first and (if ended) EOS last,
// and every audio packet two 20 ms Opus packets, the first self-delimited
// (RFC 7845 §5.1.1).
func requireWellFormed(t testing.TB, data []byte, ended bool) []oggPage {
	t.Helper()
	pages := parseOgg(t, data)
	require.GreaterOrEqual(t, len(pages), 3)
	head := pages[0]
	require.Equal(t, byte(pageBOS), head.flags)
	require.Len(t, head.packets, 1)
	h := head.packets[0]
	require.Equal(t, "OpusHead", string(h[:8]))
	require.Equal(t, byte(2), h[9], "channel count")
	require.Equal(t, uint16(preSkip), binary.LittleEndian.Uint16(h[10:]))
	require.Equal(t, uint32(48000), binary.LittleEndian.Uint32(h[12:]))
	require.Equal(t, []byte{1, 2, 0, 0, 1}, h[18:], "mapping family 1: two uncoupled streams, callee left, agent right")
	require.Len(t, pages[1].packets, 1)
	require.Equal(t, "OpusTags", string(pages[1].packets[0][:8]))
	var granule uint64
	for i, p := range pages {
		require.Equal(t, uint32(i), p.seq, "page sequence")
		require.Equal(t, head.serial, p.serial)
		if i >= 2 {
			granule += uint64(960 * len(p.packets))
			require.Equal(t, granule, p.granule, "page %d granule", i)
			for _, pkt := range p.packets {
				requireTwoStreams(t, pkt)
			}
		}
		last := i == len(pages)-1
		require.Equal(t, ended && last, p.flags&pageEOS != 0, "EOS flag on page %d of %d", i, len(pages))
	}
	return pages
}

// requireTwoStreams splits a multistream packet by the self-delimiting
// length of the first stream's last frame and checks both halves are 20 ms
// Opus packets.
func requireTwoStreams(t testing.TB, pkt []byte) {
	t.Helper()
	require.NotEmpty(t, pkt)
	require.Zero(t, pkt[0]&3, "the recorder writes the callee's stream as one-frame packets")
	n, used, err := frameLength(pkt[1:])
	require.NoError(t, err)
	first := 1 + used + n
	require.LessOrEqual(t, first, len(pkt))
	c, err := parseOpus(append([]byte{pkt[0]}, pkt[1+used:first]...), nil)
	require.NoError(t, err)
	require.Equal(t, 960, c.duration(), "callee stream")
	a, err := parseOpus(pkt[first:], nil)
	require.NoError(t, err)
	require.Equal(t, 960, a.duration(), "agent stream")
}

// ---- in-memory storage ----

// memStorage keeps objects in memory and serves presigned GETs from a
// local HTTP server. Faults are injected per operation.
type memStorage struct {
	srv *httptest.Server

	mu      sync.Mutex
	objects map[string][]byte
	meta    map[string]map[string]string
	puts    int
	// failPut, failUpload and failGet return an error to inject, or nil.
	failPut    func(key string, n int) error
	failUpload func(key string, n int) error
	failGet    func(key string) bool
	uploads    int
}

func newMemStorage(t testing.TB) *memStorage {
	m := &memStorage{objects: map[string][]byte{}, meta: map[string]map[string]string{}}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.URL.Path, "/")
		m.mu.Lock()
		data, ok := m.objects[key]
		fail := m.failGet != nil && m.failGet(key)
		m.mu.Unlock()
		switch {
		case fail:
			http.Error(w, "injected", http.StatusServiceUnavailable)
		case !ok:
			http.NotFound(w, r)
		default:
			w.Write(data)
		}
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *memStorage) Bucket() string { return "mem-bucket" }

func (m *memStorage) Put(ctx context.Context, key string, body io.ReadSeeker, contentType string, metadata map[string]string) error {
	m.mu.Lock()
	m.puts++
	n, fail := m.puts, m.failPut
	m.mu.Unlock()
	if fail != nil {
		if err := fail(key, n); err != nil {
			return err
		}
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	m.store(key, data, contentType, metadata)
	return nil
}

func (m *memStorage) Upload(ctx context.Context, key string, body io.Reader, contentType string, metadata map[string]string) (bucket.UploadResult, error) {
	m.mu.Lock()
	m.uploads++
	n, fail := m.uploads, m.failUpload
	m.mu.Unlock()
	if fail != nil {
		if err := fail(key, n); err != nil {
			return bucket.UploadResult{}, err
		}
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return bucket.UploadResult{}, fmt.Errorf("storage: upload %q: %w", key, err)
	}
	m.store(key, data, contentType, metadata)
	sum := sha256.Sum256(data)
	return bucket.UploadResult{Key: key, Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}, nil
}

func (m *memStorage) store(key string, data []byte, contentType string, metadata map[string]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objects[key] = data
	meta := map[string]string{"content-type": contentType}
	for k, v := range metadata {
		meta[k] = v
	}
	m.meta[key] = meta
}

// fakeSignature stands for the credential part of a presigned URL; it
// must never show up in a reason or log.
const fakeSignature = "X-Amz-Signature=not-for-logs"

func (m *memStorage) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	return m.srv.URL + "/" + (&url.URL{Path: key}).EscapedPath() + "?" + fakeSignature, nil
}

func (m *memStorage) Delete(ctx context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objects, key)
	return nil
}

func (m *memStorage) Head(ctx context.Context, key string) (bucket.ObjectInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objects[key]
	if !ok {
		return bucket.ObjectInfo{}, fmt.Errorf("head %q: %w", key, bucket.ErrNotFound)
	}
	meta := map[string]string{}
	for k, v := range m.meta[key] {
		if k != "content-type" {
			meta[k] = v
		}
	}
	return bucket.ObjectInfo{Key: key, Size: int64(len(b)), ContentType: m.meta[key]["content-type"], Metadata: meta}, nil
}

func (m *memStorage) get(key string) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objects[key]
	return b, ok
}

func (m *memStorage) keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ks []string
	for k := range m.objects {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// partials records OnPartial reports.
type partials struct {
	mu   sync.Mutex
	list []PartialInfo
}

func (p *partials) record(_ context.Context, pi PartialInfo) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.list = append(p.list, pi)
	return nil
}

func (p *partials) all() []PartialInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]PartialInfo(nil), p.list...)
}

// frozenClock keeps the wall clock at the call's start, so a simulated
// call fed faster than real time is placed by its stamps alone.
func frozenClock(start time.Time) func() time.Time { return func() time.Time { return start } }

func testStart() time.Time {
	return time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
}

// ---- the spool ----

// newSpool starts a spool over st for one test; it is shut down when the
// test ends. tune adjusts the config (the Ledger, caps, the clock).
func newSpool(t testing.TB, st Storage, tune ...func(*SpoolConfig)) *Spool {
	t.Helper()
	cfg := SpoolConfig{Storage: st, Owner: "test-worker", Dir: t.TempDir()}
	for _, f := range tune {
		f(&cfg)
	}
	s, err := NewSpool(cfg)
	require.NoError(t, err)
	s.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s
}

// memLedger is the call documents as the spool sees them: it keeps what
// the spool settles and notes, and serves the orphans a test gives it.
type memLedger struct {
	mu      sync.Mutex
	settled map[string]Result
	notes   map[string]PendingNote
	orphans []Orphan
	ended   bool // Settle is refused with ErrNotEnded until set
	elected map[string]bool
}

func newMemLedger() *memLedger {
	return &memLedger{settled: map[string]Result{}, notes: map[string]PendingNote{}, elected: map[string]bool{}, ended: true}
}

func (l *memLedger) Pending(_ context.Context, id string, n PendingNote) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.notes[id] = n
	return nil
}

func (l *memLedger) Settle(_ context.Context, id string, r Result) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.ended {
		return ErrNotEnded
	}
	l.settled[id] = r
	var left []Orphan
	for _, o := range l.orphans {
		if o.AttemptID != id {
			left = append(left, o)
		}
	}
	l.orphans = left
	return nil
}

func (l *memLedger) Orphans(context.Context, time.Time, int) ([]Orphan, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Orphan(nil), l.orphans...), nil
}

func (l *memLedger) Elect(_ context.Context, id string, epoch int64) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := fmt.Sprintf("%s/%d", id, epoch)
	if l.elected[k] {
		return false, nil
	}
	l.elected[k] = true
	return true, nil
}

// waitSettled waits for the spool to settle id, and returns the outcome.
func (l *memLedger) waitSettled(t testing.TB, id string, limit time.Duration) Result {
	t.Helper()
	var r Result
	require.Eventually(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		var ok bool
		r, ok = l.settled[id]
		return ok
	}, limit, 10*time.Millisecond, "the spool settled %s", id)
	return r
}

func (l *memLedger) addOrphan(o Orphan) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.orphans = append(l.orphans, o)
}
