package recording

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"

	"go.uber.org/zap"
)

const (
	frameDuration = 20 * time.Millisecond
	frameMS       = int64(frameDuration / time.Millisecond)
	// frame48 is a slot of the recording's grid in 48 kHz samples, the
	// unit of Opus durations and of Ogg Opus granule positions.
	frame48 = 960
	// preSkip is libopus's encoder lookahead (2.5 ms + 4 ms of delay
	// compensation, in 48 kHz samples) for every application but
	// restricted-lowdelay: the callee's sender (livekit-sip's encoder)
	// uses one of those; decoders drop it so the audio lines up with its
	// stamps. One pre-skip covers every stream (RFC 7845), and the agent's
	// CELT-only encoder looks ahead 2.5 ms only, so the agent's channel
	// sits 4 ms early: well inside the 60 ms alignment the tests hold.
	preSkip = 312
	// maxPacket is libopus's recommended output buffer (RFC 6716 caps a
	// frame at 1275 bytes).
	maxPacket = 4000
	// wallTicks is how many drains pass between the wall clock advancing
	// the recording through silence (a second), so a quiet stretch still
	// seals segments.
	wallTicks = int(time.Second / drainEvery)
	// maxJump rejects a packet stamped this far beyond everything seen so
	// far: a broken timestamp must not make the mixer write hours of
	// silence.
	maxJump = 2 * time.Minute
	// segmentBitrate sizes a segment's buffer: two voices of about 28
	// kbit/s each, as the telephony stack encodes them.
	segmentBitrate = 64000
)

// sideNames name the sides in logs.
var sideNames = [2]string{callee: "callee", agent: "agent"}

// mixResult is what the mixer hands Close when it stops.
type mixResult struct {
	tail       []byte // the stream after the last sealed segment, ending with an EOS page
	tailFrames int64
	frames     int64 // written, all segments together
	late       [2]int64
	rejected   int64
	invalid    int64
	stopped    string // why recording stopped early, if it did
	// unwritten is the audio (in 48 kHz samples) the call had after
	// recording stopped early: lost.
	unwritten int64
}

// mixer is the recorder's one goroutine that touches audio: it places both
// sides' packets on the call's 20 ms grid, and once the jitter window has
// passed writes each slot as one Ogg packet holding both (a multistream
// packet: the callee's self-delimited, then the agent's), silence where a
// side sent nothing. It seals a segment every SegmentDuration. Nothing is
// decoded or encoded, unless a sender's packets do not fit the grid
// (reencoder). Everything below r is confined to it.
type mixer struct {
	r                       *Recorder
	window, jump            int64 // in 48 kHz samples
	place                   placement
	segLen                  int64 // frames per segment
	ogg                     *oggStream
	cur                     *bytes.Buffer // the segment being written
	segCap                  int           // expected segment size, to allocate once
	tracks                  [2]*track
	reenc                   [2]*reencoder // nil until a side needs one
	emitted, latest, placed int64         // positions in 48 kHz samples
	segFrames, frames       int64
	segN                    int
	rejected, invalid       int64
	pkt                     []byte   // one multistream packet
	parsed                  [][]byte // frames of the packet being parsed
	batch                   []chunk  // the input being placed
	stopped                 string
}

func newMixer(r *Recorder) (*mixer, error) {
	o := r.opts
	var serial [4]byte
	if _, err := rand.Read(serial[:]); err != nil {
		return nil, fmt.Errorf("recording: ogg serial: %w", err)
	}
	segLen := int64(o.SegmentDuration / frameDuration)
	m := &mixer{
		r:      r,
		window: samples48(o.JitterWindow),
		place:  newPlacement(),
		jump:   samples48(maxJump),
		segLen: segLen,
		// Bitrate covers the packets; Ogg adds about 2%.
		segCap: int(segmentBitrate/8*segLen*frameMS/1000) * 11 / 10,
		pkt:    make([]byte, 0, 2*maxPacket),
	}
	m.tracks = [2]*track{newTrack(m.place), newTrack(m.place)}
	m.cur = bytes.NewBuffer(make([]byte, 0, m.segCap))
	m.ogg = newOggStream(binary.LittleEndian.Uint32(serial[:]), m.cur)
	comments := []string{
		"ATTEMPT_ID=" + r.cfg.AttemptID,
		"CHANNELS=left:callee right:agent",
		"DATE=" + r.cfg.Start.UTC().Format(time.RFC3339),
	}
	if err := m.ogg.header(opusHead(preSkip)); err != nil {
		return nil, err
	}
	if err := m.ogg.header(opusTags(vendor, comments)); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *mixer) run() {
	tick := time.NewTicker(drainEvery)
	defer tick.Stop()
	for ticks := 1; ; ticks++ {
		select {
		case <-tick.C:
			m.drain()
			if ticks%wallTicks == 0 {
				m.advance(m.position(m.r.opts.Now()))
			}
		case <-m.r.wake:
			m.drain()
		case <-m.r.stopMix:
			m.finish()
			return
		}
	}
}

// drain places what waits in the input queue.
func (m *mixer) drain() {
	in := &m.r.in
	in.mu.Lock()
	m.batch, in.chunks = in.chunks, m.batch[:0]
	in.mu.Unlock()
	for _, c := range m.batch {
		m.add(c)
	}
	m.r.queued.Add(-int64(len(m.batch)))
	clear(m.batch)
}

// finish writes everything received and hands the tail to Close. Inputs
// are refused once stopMix is closed, so one drain takes the rest.
func (m *mixer) finish() {
	m.drain()
	if m.stopped == "" {
		for side, re := range m.reenc {
			if re != nil {
				if err := re.flush(func(at int64, pkt []byte) { m.put(side, at, pkt) }); err != nil {
					m.r.log.Warn("recording.reencode_failed", zap.String("side", sideNames[side]), zap.Error(err))
				}
			}
		}
		// Through the end of the last audio placed.
		m.emitThrough(max(m.placed, m.emitted))
	}
	res := mixResult{
		frames:   m.frames,
		late:     [2]int64{m.tracks[callee].late, m.tracks[agent].late},
		rejected: m.rejected,
		invalid:  m.invalid,
		stopped:  m.stopped,
	}
	if m.stopped != "" {
		res.unwritten = max(m.latest, m.placed) - m.emitted
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

// position converts a wall-clock time to 48 kHz samples from the call
// start. Sub saturates, and samples48 cannot overflow, so any time.Time is
// safe.
func (m *mixer) position(t time.Time) int64 {
	return samples48(t.Sub(m.r.cfg.Start))
}

func (m *mixer) add(c chunk) {
	p, err := parseOpus(c.pkt, m.parsed)
	m.parsed = p.frames[:0]
	if err != nil {
		// Counted and left out: its slot gets silence, as for a lost packet.
		if m.invalid++; m.invalid == 1 {
			m.r.log.Warn("recording.invalid_packet", zap.String("side", sideNames[c.side]), zap.Error(err))
		}
		return
	}
	n := int64(p.duration())
	at := m.position(c.at)
	if c.arrived {
		at -= n // its audio ended when it arrived
	}
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
	switch {
	case m.reenc[c.side] == nil && (p.stereo() || p.frameSize() != frame48):
		if err := m.startReencoding(c.side, p); err != nil {
			m.stop(fmt.Sprintf("recording stopped at %v: %v", m.duration(), err))
			return
		}
		fallthrough
	case m.reenc[c.side] != nil:
		err := m.reenc[c.side].feed(at, c.pkt, m.place.join, func(at int64, pkt []byte) { m.put(c.side, at, pkt) })
		if err != nil {
			m.invalid++
		}
	case len(p.frames) == 1:
		m.put(c.side, at, c.pkt)
	default:
		// 20 ms frames in one packet: a packet for each slot.
		for i := range p.frames {
			m.put(c.side, at+int64(i)*frame48, p.appendFrame(nil, i, false))
		}
	}
	m.advance(at + n)
}

// startReencoding sets a side on the reencoder for the rest of the call.
func (m *mixer) startReencoding(side int, p opusPacket) error {
	re, err := newReencoder(m.r.opts)
	if err != nil {
		return err
	}
	m.reenc[side] = re
	m.r.log.Info("recording.reencoding", zap.String("side", sideNames[side]),
		zap.Bool("stereo", p.stereo()), zap.Duration("frame", time.Duration(p.frameSize())*time.Second/48000))
	return nil
}

// put places one 20 ms packet of side.
func (m *mixer) put(side int, at int64, pkt []byte) {
	end := m.tracks[side].place(at, pkt, m.emitted/frame48)
	m.placed = max(m.placed, end)
}

// advance moves the timeline to pos and writes what the jitter window has
// released.
func (m *mixer) advance(pos int64) {
	if pos > m.latest {
		m.latest = pos
	}
	if m.stopped == "" {
		m.emitThrough(m.latest - m.window)
	}
}

// emitThrough writes the whole slots before pos.
func (m *mixer) emitThrough(pos int64) {
	for m.emitted+frame48 <= pos && m.stopped == "" {
		m.emitFrame()
	}
}

func (m *mixer) emitFrame() {
	pkt, err := m.multistream(m.tracks[callee].take(), m.tracks[agent].take())
	if err == nil {
		err = m.ogg.packet(pkt, frame48)
	}
	if err != nil {
		m.stop(fmt.Sprintf("recording stopped at %v: writing failed: %v", m.duration(), err))
		return
	}
	m.emitted += frame48
	m.frames++
	m.segFrames++
	if m.segFrames == m.segLen {
		m.seal()
	}
}

// multistream is one slot of the recording (RFC 7845 §5.1.1, channel
// mapping family 1): stream 0, the callee, self-delimited, then stream 1,
// the agent, as sent. A side with no packet for the slot is silent.
func (m *mixer) multistream(c, a []byte) ([]byte, error) {
	if c == nil {
		c = silence
	}
	if a == nil {
		a = silence
	}
	p, err := parseOpus(c, m.parsed)
	m.parsed = p.frames[:0]
	if err != nil {
		return nil, err
	}
	if len(p.frames) != 1 {
		return nil, fmt.Errorf("the callee's packet for a slot has %d frames", len(p.frames))
	}
	m.pkt = p.appendFrame(m.pkt[:0], 0, true)
	m.pkt = append(m.pkt, a...)
	return m.pkt, nil
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

// stop ends writing for good; what was sealed before is kept.
func (m *mixer) stop(reason string) {
	m.stopped = reason
	m.tracks[callee].slots, m.tracks[agent].slots = nil, nil
	m.cur = nil
	m.ogg.out = nil
	m.r.log.Warn("recording.stopped", zap.String("reason", reason))
}

func (m *mixer) duration() time.Duration {
	return time.Duration(m.frames) * frameDuration
}
