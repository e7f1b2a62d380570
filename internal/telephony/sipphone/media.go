package sipphone

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/emiago/diago/media"
	"github.com/pion/rtp"
)

// Utterance is one thing the phone said. Start is when its first packet
// was sent; End when its last packet had been sent and its 20 ms had
// passed, so the caller can have heard all of it. The positions are on the
// phone's own send timeline, in samples.
type Utterance struct {
	Start, End       time.Time
	StartPos, EndPos int
	Cleared          bool // cut short by StopSaying or the end of the call
}

// speaker is the phone's mouth: a queue of PCM that the send loop drains
// one 20 ms frame at a time, with silence when nothing is queued, so the
// RTP stream never pauses (as a handset's does not).
type speaker struct {
	notify func() // called (without mu) when said changes; immutable

	mu    sync.Mutex // guards the fields below
	queue []*utterance
	pos   int // samples sent
	said  []Utterance
	muted bool // CutMedia: no packets at all from now on
}

type utterance struct {
	pcm  []int16
	off  int           // samples already taken
	idx  int           // index in said once started, else -1
	done chan struct{} // closed once sent or dropped
}

// say queues pcm; the returned channel closes when all of it was sent.
func (s *speaker) say(pcm []int16) <-chan struct{} {
	u := &utterance{pcm: pcm, idx: -1, done: make(chan struct{})}
	if len(pcm) == 0 {
		close(u.done)
		return u.done
	}
	s.mu.Lock()
	s.queue = append(s.queue, u)
	s.mu.Unlock()
	return u.done
}

// fill takes the next frame from the queue and returns the utterances
// whose last sample is in it.
func (s *speaker) fill(frame []int16, now time.Time) (finished []*utterance) {
	started := false
	defer func() {
		if started {
			s.changed()
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(frame)
	n := 0
	for n < len(frame) && len(s.queue) > 0 {
		u := s.queue[0]
		if u.idx < 0 {
			u.idx, started = len(s.said), true
			s.said = append(s.said, Utterance{Start: now, StartPos: s.pos + n})
		}
		c := copy(frame[n:], u.pcm[u.off:])
		u.off += c
		n += c
		if u.off == len(u.pcm) {
			s.said[u.idx].EndPos = s.pos + n
			s.queue = s.queue[1:]
			finished = append(finished, u)
		}
	}
	s.pos += len(frame)
	return finished
}

// sent marks utterances as heard once their last frame went out.
func (s *speaker) sent(finished []*utterance, now time.Time) {
	if len(finished) == 0 {
		return
	}
	defer s.changed()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range finished {
		if s.said[u.idx].End.IsZero() {
			s.said[u.idx].End = now
		}
		close(u.done)
	}
}

// stop drops everything queued; an utterance cut mid-way is marked
// Cleared at its current position.
func (s *speaker) stop(now time.Time) {
	defer s.changed()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.queue {
		if u.idx >= 0 {
			s.said[u.idx].End, s.said[u.idx].EndPos, s.said[u.idx].Cleared = now, s.pos, true
		}
		close(u.done)
	}
	s.queue = nil
}

func (s *speaker) changed() {
	if s.notify != nil {
		s.notify()
	}
}

func (s *speaker) utterances() []Utterance {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Utterance(nil), s.said...)
}

// cut stops the stream for good (CutMedia): what is queued is dropped.
func (s *speaker) cut() {
	s.stop(time.Now())
	s.mu.Lock()
	s.muted = true
	s.mu.Unlock()
}

func (s *speaker) isCut() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.muted
}

// run sends a frame every 20 ms until ctx ends or the media closes. The
// writer paces: diago's RTPPacketWriter blocks on its 20 ms clock after
// each packet. Once cut, it sends nothing and waits for the end.
func (s *speaker) run(ctx context.Context, w io.Writer, codec Codec) {
	frame := make([]int16, frameSamples)
	payload := make([]byte, frameSamples)
	for ctx.Err() == nil {
		if s.isCut() {
			<-ctx.Done()
			return
		}
		finished := s.fill(frame, time.Now())
		codec.encode(payload, frame)
		if _, err := w.Write(payload); err != nil {
			return
		}
		s.sent(finished, time.Now())
	}
}

// Digit is one DTMF key the phone received as RFC 4733 telephone-events.
// At is when its first event packet arrived; End when its end packet did
// (zero if that was lost); Duration is the sender's own account of it.
type Digit struct {
	Key      rune
	At, End  time.Time
	Duration time.Duration
}

// listener is the phone's ear: it reads RTP until the media closes,
// decoding audio into the recording and telephone-events into digits.
// Its fields are confined to the goroutine running run.
type listener struct {
	codec   Codec
	audioPT uint8
	dtmfPT  int // -1 when telephone-event was not negotiated
	heard   *Recording
	clock   rtpClock // places heard packets on the caller's timeline
	call    *Call

	// The telephone-event being received, keyed by its RTP timestamp.
	evActive bool
	evEnded  bool
	evTS     uint32
	evCode   uint8
	evIndex  int
}

func (l *listener) run(r *media.RTPPacketReader) {
	buf := make([]byte, media.RTPBufSize)
	for {
		n, err := r.Read(buf)
		if err != nil {
			return
		}
		if n == 0 {
			continue
		}
		at, h := time.Now(), r.PacketHeader
		switch {
		case int(h.PayloadType) == l.dtmfPT:
			l.event(at, h, buf[:n])
		case h.PayloadType == l.audioPT:
			l.clock.place(l.heard, at, h, l.codec.decode(buf[:n]))
		}
	}
}

// event follows RFC 4733: every packet of one key press carries the same
// RTP timestamp, the first has the marker bit, the last three (usually)
// have the end bit. A new timestamp, a new key, or a marker after an end
// starts a new press.
func (l *listener) event(at time.Time, h rtp.Header, payload []byte) {
	var ev media.DTMFEvent
	if media.DTMFDecode(payload, &ev) != nil || ev.Event > 15 {
		return
	}
	fresh := !l.evActive || h.Timestamp != l.evTS || ev.Event != l.evCode || (h.Marker && l.evEnded)
	if !fresh && l.evEnded {
		return // a retransmitted end packet
	}
	if fresh {
		l.evActive, l.evEnded, l.evTS, l.evCode = true, false, h.Timestamp, ev.Event
		l.evIndex = l.call.addDigit(Digit{Key: media.DTMFToRune(ev.Event), At: at})
	}
	if ev.EndOfEvent {
		l.evEnded = true
		l.call.endDigit(l.evIndex, at, time.Duration(ev.Duration)*time.Second/SampleRate)
	}
}
