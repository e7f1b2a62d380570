package recording

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"

	"go.uber.org/zap"
	"gopkg.in/hraban/opus.v2"
)

const (
	frameDuration = 20 * time.Millisecond
	frameMS       = int64(frameDuration / time.Millisecond)
	// granulePerFrame: Ogg Opus granule positions count 48 kHz samples
	// whatever the input rate.
	granulePerFrame = int(48000 * frameMS / 1000)
	// preSkip is libopus's encoder lookahead (2.5 ms + 4 ms of delay
	// compensation, in 48 kHz samples) for every application but
	// restricted-lowdelay; decoders drop it so the audio lines up with the
	// input. The bindings do not expose OPUS_GET_LOOKAHEAD; the alignment
	// test checks the value.
	preSkip = 312
	// maxPacket is libopus's recommended output buffer (RFC 6716 caps a
	// frame at 1275 bytes).
	maxPacket = 4000
	// wallTick is how often the mixer lets the wall clock advance the
	// recording through silence, so a quiet stretch still seals segments.
	wallTick = time.Second
	// maxJump rejects a chunk stamped this far beyond everything seen so
	// far: a broken timestamp must not make the mixer encode hours of
	// silence.
	maxJump = 2 * time.Minute
)

// mixResult is what the mixer hands Close when it stops.
type mixResult struct {
	tail       []byte // the stream after the last sealed segment, ending with an EOS page
	tailFrames int64
	frames     int64 // encoded, all segments together
	late       [2]int64
	rejected   int64
	stopped    string // why recording stopped early, if it did
	// unencoded is the audio (in samples) the call had after recording
	// stopped early: lost.
	unencoded int64
}

// mixer is the recorder's one goroutine that touches audio: it places both
// sides' chunks on the call's timeline, encodes 20 ms stereo frames once
// the jitter window has passed, writes them into the Ogg stream and seals
// a segment every SegmentDuration. Everything below r is confined to it.
type mixer struct {
	r                       *Recorder
	frame                   int   // samples per channel per frame
	window, jump            int64 // in samples
	place                   placement
	segLen                  int64 // frames per segment
	enc                     *opus.Encoder
	ogg                     *oggStream
	cur                     *bytes.Buffer // the segment being written
	segCap                  int           // expected segment size, to allocate once
	tracks                  [2]*track
	emitted, latest, placed int64 // positions in samples per channel
	segFrames, frames       int64
	segN                    int
	rejected                int64
	pcm                     []int16 // one interleaved stereo frame
	pkt                     []byte
	stopped                 string
}

func newMixer(r *Recorder) (*mixer, error) {
	o := r.opts
	enc, err := opus.NewEncoder(o.SampleRate, 2, opus.AppVoIP)
	if err != nil {
		return nil, fmt.Errorf("recording: opus encoder at %d Hz: %w", o.SampleRate, err)
	}
	if err := enc.SetBitrate(o.Bitrate); err != nil {
		return nil, fmt.Errorf("recording: opus bitrate %d: %w", o.Bitrate, err)
	}
	if err := enc.SetComplexity(o.Complexity); err != nil {
		return nil, fmt.Errorf("recording: opus complexity %d: %w", o.Complexity, err)
	}
	var serial [4]byte
	if _, err := rand.Read(serial[:]); err != nil {
		return nil, fmt.Errorf("recording: ogg serial: %w", err)
	}
	frame := int(samples(frameDuration, o.SampleRate))
	segLen := int64(o.SegmentDuration / frameDuration)
	m := &mixer{
		r:      r,
		frame:  frame,
		window: samples(o.JitterWindow, o.SampleRate),
		place:  newPlacement(o.SampleRate),
		jump:   samples(maxJump, o.SampleRate),
		segLen: segLen,
		enc:    enc,
		// Bitrate covers the packets; Ogg adds about 2%.
		segCap: int(int64(o.Bitrate)/8*segLen*frameMS/1000) * 11 / 10,
		pcm:    make([]int16, 2*frame),
		pkt:    make([]byte, maxPacket),
	}
	m.tracks = [2]*track{newTrack(m.place), newTrack(m.place)}
	m.cur = bytes.NewBuffer(make([]byte, 0, m.segCap))
	m.ogg = newOggStream(binary.LittleEndian.Uint32(serial[:]), m.cur)
	comments := []string{
		"ATTEMPT_ID=" + r.cfg.AttemptID,
		"CHANNELS=left:callee right:agent",
		"DATE=" + r.cfg.Start.UTC().Format(time.RFC3339),
	}
	if err := m.ogg.header(opusHead(2, preSkip, o.SampleRate)); err != nil {
		return nil, err
	}
	if err := m.ogg.header(opusTags(opus.Version(), comments)); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *mixer) run() {
	tick := time.NewTicker(wallTick)
	defer tick.Stop()
	for {
		select {
		case c := <-m.r.in:
			m.add(c)
		case <-tick.C:
			m.advance(m.position(m.r.opts.Now()))
		case <-m.r.stopMix:
			m.finish()
			return
		}
	}
}

// finish encodes everything received and hands the tail to Close. Inputs
// are refused once stopMix is closed, so draining in is bounded.
func (m *mixer) finish() {
	for drained := false; !drained; {
		select {
		case c := <-m.r.in:
			m.add(c)
		default:
			drained = true
		}
	}
	if m.stopped == "" {
		// Through the end of the last audio placed, a partial frame
		// padded with silence.
		f := int64(m.frame)
		m.emitThrough((max(m.placed, m.emitted) + f - 1) / f * f)
	}
	res := mixResult{
		frames:   m.frames,
		late:     [2]int64{m.tracks[callee].late, m.tracks[agent].late},
		rejected: m.rejected,
		stopped:  m.stopped,
	}
	if m.stopped != "" {
		res.unencoded = max(m.latest, m.placed) - m.emitted
	}
	if m.stopped == "" && m.frames > 0 {
		// The last page carries the end-of-stream flag, so it needs a
		// packet: at most 20 ms of silence more.
		for !m.ogg.pending() && m.stopped == "" {
			m.emitFrame()
		}
		m.ogg.flush(true)
		res.tail, res.tailFrames = m.cur.Bytes(), m.segFrames
		res.frames = m.frames
	}
	m.r.mixDone <- res
}

// position converts a wall-clock time to samples from the call start.
// Sub saturates, and samples cannot overflow, so any time.Time is safe.
func (m *mixer) position(t time.Time) int64 {
	return samples(t.Sub(m.r.cfg.Start), m.r.rate)
}

func (m *mixer) add(c chunk) {
	n := int64(len(c.pcm))
	m.r.queued.Add(-n)
	at := m.position(c.at)
	if m.stopped != "" {
		// Only the timeline moves on: what is lost after the stop.
		if at >= m.latest-m.jump && at <= m.latest+m.jump {
			m.latest = max(m.latest, at+n)
		}
		return
	}
	if at > m.latest+m.jump || at < -m.jump {
		m.rejected++
		return
	}
	end := m.tracks[c.side].place(at, c.pcm, m.emitted)
	m.placed = max(m.placed, end)
	m.advance(at + n)
}

// advance moves the timeline to pos and encodes what the jitter window
// has released.
func (m *mixer) advance(pos int64) {
	if pos > m.latest {
		m.latest = pos
	}
	if m.stopped == "" {
		m.emitThrough(m.latest - m.window)
	}
}

// emitThrough encodes the whole frames before pos.
func (m *mixer) emitThrough(pos int64) {
	for m.emitted+int64(m.frame) <= pos && m.stopped == "" {
		m.emitFrame()
	}
}

func (m *mixer) emitFrame() {
	m.tracks[callee].take(m.pcm, m.frame, 2)
	m.tracks[agent].take(m.pcm[1:], m.frame, 2)
	n, err := m.enc.Encode(m.pcm, m.pkt)
	if err == nil {
		err = m.ogg.packet(m.pkt[:n], granulePerFrame)
	}
	if err != nil {
		m.stop(fmt.Sprintf("recording stopped at %v: encoding failed: %v", m.duration(), err))
		return
	}
	m.emitted += int64(m.frame)
	m.frames++
	m.segFrames++
	if m.segFrames == m.segLen {
		m.seal()
	}
}

// seal ends the current segment on a page boundary and hands it to the
// spool. When the spool can hold no more (memory and disk caps reached) or
// its job for this recording has ended, the recording stops: what was
// sealed before is kept, and the rest of the call is counted as lost.
func (m *mixer) seal() {
	m.ogg.flush(false)
	h, err := m.r.cfg.Spool.buf.hold(m.cur.Bytes())
	if err == nil {
		if err = m.r.job.segs.push(segment{n: m.segN, data: h, frames: m.segFrames}); err != nil {
			m.r.cfg.Spool.buf.release(h)
		}
	}
	if err != nil {
		m.stop(fmt.Sprintf("recording stopped at %v: %v", m.duration(), err))
		return
	}
	m.segN++
	m.segFrames = 0
	m.cur = bytes.NewBuffer(make([]byte, 0, m.segCap))
	m.ogg.out = m.cur
}

// stop ends encoding for good; what was sealed before is kept.
func (m *mixer) stop(reason string) {
	m.stopped = reason
	m.tracks[callee].buf, m.tracks[agent].buf = nil, nil
	m.cur = nil
	m.ogg.out = nil
	m.r.log.Warn("recording.stopped", zap.String("reason", reason))
}

func (m *mixer) duration() time.Duration {
	return time.Duration(m.frames) * frameDuration
}
