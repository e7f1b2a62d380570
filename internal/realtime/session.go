package realtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
)

// Session is one OpenAI Realtime conversation over a WebSocket.
//
// It owns two goroutines, both started by Dial and both stopped by Close, by
// the Dial context ending, or by the server ending the connection:
//   - readLoop: the only reader of the socket and the only sender on (and
//     closer of) the Events channel.
//   - writeLoop: the only writer of data frames. Control events (response,
//     truncate, tool results) go before queued audio, so a barge-in truncate
//     never waits behind callee audio.
//
// Immutable after Dial: cfg, log, conn, info, pingDeadline, batch. Guarded by
// mu: err, fatal, play; by in.mu: in's other fields (the callers of
// SendAudio). Channels carry everything else.
type Session struct {
	cfg  Config
	log  *zap.Logger
	conn *websocket.Conn
	info SessionInfo

	events  chan Event
	control chan []byte
	audio   chan *audioMsg // from audioBufs, back to it once written or dropped
	batch   int            // samples per input_audio_buffer.append (Config.InputBatch)
	in      inputBatch

	done    chan struct{} // closed once, by end
	endOnce sync.Once
	wg      sync.WaitGroup

	seq          atomic.Uint64
	inChunks     atomic.Int64
	inSamples    atomic.Int64
	inDropped    atomic.Int64
	staleDeltas  atomic.Int64
	outSamples   atomic.Int64
	pingDeadline time.Duration

	mu    sync.Mutex
	err   error // why the session ended; nil while running or after Close
	fatal error // a session-ending API error seen before the socket closed
	play  assistantItems
}

// inputBatch is callee audio not yet sent: SendAudio's chunks until they
// add up to a batch.
type inputBatch struct {
	mu     sync.Mutex
	pcm    []int16
	chunks int       // SendAudio chunks in pcm
	since  time.Time // when the first of them came
	// flush sends a batch the callee's audio stopped filling (the line
	// went quiet, the call is ending): pushed out as each batch starts, it
	// fires only when the chunks stop coming.
	flush *time.Timer
}

// audioMsg is one input_audio_buffer.append and how many SendAudio chunks
// it carries (a dropped message drops them all).
type audioMsg struct {
	b      []byte
	chunks int
}

// Dial connects, configures the session with session.update and waits for
// session.updated, all within cfg.HandshakeTimeout. The session then runs
// until Close, until ctx ends, or until the server closes it; Events is closed
// when it ends and Err says why.
func Dial(ctx context.Context, cfg Config) (*Session, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	wsURL, err := realtimeURL(cfg.BaseURL, cfg.Model)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, cfg.HandshakeTimeout)
	defer cancel()

	dialer := cfg.Dialer
	if dialer == nil {
		dialer = &websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: cfg.HandshakeTimeout}
	}
	// GA needs no OpenAI-Beta header; sending "realtime=v1" would select the
	// deprecated beta protocol.
	header := http.Header{"Authorization": {"Bearer " + cfg.APIKey}}
	conn, resp, err := dialer.DialContext(hctx, wsURL, header)
	if err != nil {
		return nil, dialError(cfg, resp, err)
	}
	conn.SetReadLimit(maxMessageBytes)

	s := &Session{
		cfg:     cfg,
		log:     cfg.Logger.With(zap.String("component", "realtime"), zap.String("model", cfg.Model)),
		conn:    conn,
		events:  make(chan Event, cfg.EventBuffer),
		control: make(chan []byte, 64),
		audio:   make(chan *audioMsg, cfg.AudioQueue),
		batch:   MSToSamples(int(cfg.InputBatch / time.Millisecond)),
		done:    make(chan struct{}),
	}
	if cfg.PingInterval > 0 {
		s.pingDeadline = 2 * cfg.PingInterval
	}

	// Reads are not context-aware: closing the socket is what unblocks them.
	stop := context.AfterFunc(hctx, func() { conn.Close() })
	pending, err := s.handshake()
	if !stop() && err == nil {
		err = errors.New("handshake interrupted")
	}
	if err != nil {
		conn.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("realtime: dial %s: %w", cfg.Model, cerr)
		}
		if hctx.Err() != nil {
			return nil, fmt.Errorf("realtime: no session.updated within %s (Config.HandshakeTimeout): %w", cfg.HandshakeTimeout, err)
		}
		return nil, err
	}

	def := conn.PingHandler()
	conn.SetPingHandler(func(data string) error { s.touch(); return def(data) })
	conn.SetPongHandler(func(string) error { s.touch(); return nil })
	s.touch()

	s.wg.Add(2)
	go s.readLoop(pending)
	go s.writeLoop(ctx)
	s.log.Debug("realtime.session.ready", zap.String("session_id", s.info.ID))
	return s, nil
}

// handshake sends session.update and reads until session.updated. Events of
// interest that arrive first are returned, to be delivered before any other.
func (s *Session) handshake() ([]Event, error) {
	update := sessionUpdateEvent{Type: "session.update", EventID: s.nextID(), Session: newSessionConfig(s.cfg)}
	b, err := json.Marshal(update)
	if err != nil {
		return nil, fmt.Errorf("realtime: encode session.update: %w", err)
	}
	if err := s.write(b); err != nil {
		return nil, fmt.Errorf("realtime: send session.update: %w", err)
	}
	var pending []Event
	for {
		mt, data, err := s.conn.ReadMessage()
		if err != nil {
			return nil, fmt.Errorf("realtime: waiting for session.updated: %w", s.closeError(err))
		}
		if mt != websocket.TextMessage {
			pending = append(pending, ErrorEvent{malformed("", data, errors.New("binary frame"))})
			continue
		}
		ev, typ, err := decodeEvent(data)
		if err != nil {
			pending = append(pending, ErrorEvent{err})
			continue
		}
		switch e := ev.(type) {
		case nil:
			s.log.Debug("realtime.event.ignored", zap.String("type", typ))
		case SessionCreated:
			s.log.Debug("realtime.session.created", zap.String("session_id", e.Session.ID))
		case SessionUpdated:
			s.info = e.Session
			return pending, nil
		case ErrorEvent:
			return nil, fmt.Errorf("realtime: session.update refused: %w", e.Err)
		default:
			pending = append(pending, ev)
		}
	}
}

// Info is the session configuration the server confirmed.
func (s *Session) Info() SessionInfo { return s.info }

// Events delivers server events in order. It is closed when the session
// ends; Err then says why. The caller must keep reading: a stalled reader
// stalls the socket.
func (s *Session) Events() <-chan Event { return s.events }

// Done is closed when the session ends.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err reports why the session ended: nil while it runs and after Close,
// a *CloseError (errors.Is ErrClosed, plus ErrSessionExpired when the
// server expired the session) when the server or network ended it, or an
// error wrapping ErrClosed and the context's error when ctx ended it.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the session with a normal close frame and waits for its
// goroutines. It is safe to call more than once and from any goroutine.
func (s *Session) Close() error {
	s.end(nil, true)
	s.wg.Wait()
	return nil
}

// SendAudio queues callee audio (24 kHz mono PCM16) for the server. Chunks
// are gathered until they hold Config.InputBatch of audio, which then goes
// as one input_audio_buffer.append. It never blocks: if the socket has
// fallen Config.AudioQueue messages behind, the oldest queued one is
// dropped (its chunks counted in Stats) so the server hears the freshest
// audio and the media path is never stalled by the network. pcm is copied
// before SendAudio returns; the caller may reuse it.
func (s *Session) SendAudio(pcm []int16) error {
	if len(pcm) == 0 {
		return nil
	}
	select {
	case <-s.done:
		return s.endedErr()
	default:
	}
	s.inChunks.Add(1)
	s.inSamples.Add(int64(len(pcm)))
	s.in.mu.Lock()
	defer s.in.mu.Unlock()
	if msg := s.gather(pcm); msg != nil {
		s.queueAudio(msg)
	}
	return nil
}

// queueAudio hands msg to the writer, dropping the oldest queued message
// if the socket is AudioQueue behind. Callers hold in.mu.
func (s *Session) queueAudio(msg *audioMsg) {
	select {
	case s.audio <- msg:
		return
	default:
	}
	select {
	case old := <-s.audio:
		s.noteDrop(old.chunks)
		audioBufs.Put(old)
	default:
	}
	select {
	case s.audio <- msg:
	default:
		s.noteDrop(msg.chunks)
		audioBufs.Put(msg)
	}
}

// gather adds pcm to the batch and returns the message to send once the
// batch is full, nil before. Callers hold in.mu, until the message is
// queued: the flush and SendAudio then queue batches in their order.
func (s *Session) gather(pcm []int16) *audioMsg {
	in := &s.in
	var send []int16
	if in.chunks == 0 && len(pcm) >= s.batch {
		send = pcm // a chunk that fills a batch alone goes as it is
	} else {
		in.pcm = append(in.pcm, pcm...)
		if len(in.pcm) < s.batch {
			if in.chunks++; in.chunks == 1 {
				s.startBatch()
			}
			return nil
		}
		send = in.pcm
	}
	return s.takeBatch(send, in.chunks+1)
}

// startBatch notes when a batch began and makes sure it is sent even if
// no more chunks come. Callers hold in.mu.
func (s *Session) startBatch() {
	in := &s.in
	in.since = time.Now()
	if in.flush == nil {
		in.flush = time.AfterFunc(s.cfg.InputBatch+flushSlack, s.flushInput)
	} else {
		in.flush.Reset(s.cfg.InputBatch + flushSlack)
	}
}

// flushSlack is how late the chunk that would fill a batch may be before
// the batch goes without it: a batch is never held more than this past
// its length, and a steady 20 ms stream always beats the flush (which,
// pushed out as each batch starts, then never fires).
const flushSlack = 10 * time.Millisecond

// flushInput sends a batch left waiting for at least InputBatch.
func (s *Session) flushInput() {
	s.in.mu.Lock()
	defer s.in.mu.Unlock()
	if s.in.chunks == 0 || time.Since(s.in.since) < s.cfg.InputBatch {
		return
	}
	select {
	case <-s.done:
	default:
		s.queueAudio(s.takeBatch(s.in.pcm, s.in.chunks))
	}
}

// takeBatch encodes pcm, chunks SendAudio chunks, as one message and
// empties the batch. Callers hold in.mu.
func (s *Session) takeBatch(pcm []int16, chunks int) *audioMsg {
	msg := audioBufs.Get().(*audioMsg)
	msg.b = appendAudioEvent(msg.b[:0], pcm)
	msg.chunks = chunks
	s.in.pcm, s.in.chunks = s.in.pcm[:0], 0
	return msg
}

// audioBufs recycles input_audio_buffer.append messages: a call makes one
// per Config.InputBatch.
var audioBufs = sync.Pool{New: func() any { return new(audioMsg) }}

func (s *Session) noteDrop(chunks int) {
	n := s.inDropped.Add(int64(chunks))
	if was := n - int64(chunks); was == 0 || was/50 != n/50 {
		s.log.Warn("realtime.audio.dropped", zap.Int64("chunks", n), zap.Int("queue", s.cfg.AudioQueue))
	}
}

// CreateResponse asks the model to speak now, e.g. the greeting. Non-empty
// instructions apply to this response only.
func (s *Session) CreateResponse(instructions string) error {
	ev := responseCreateEvent{Type: "response.create", EventID: s.nextID()}
	if instructions != "" {
		ev.Response = &responseParams{Instructions: instructions}
	}
	return s.sendControl(ev)
}

// SendToolResult answers a FunctionCall and asks the model to continue.
func (s *Session) SendToolResult(callID, output string) error {
	if callID == "" {
		return errors.New("realtime: SendToolResult: callID is empty")
	}
	item := itemCreateEvent{Type: "conversation.item.create", EventID: s.nextID(),
		Item: createItem{Type: "function_call_output", CallID: callID, Output: output}}
	if err := s.sendControl(item); err != nil {
		return err
	}
	return s.CreateResponse("")
}

// Truncate tells the server the callee heard only the first audioEndMS of an
// assistant item, so the unheard rest leaves the conversation context.
func (s *Session) Truncate(itemID string, audioEndMS int) error {
	if itemID == "" {
		return errors.New("realtime: Truncate: itemID is empty")
	}
	if audioEndMS < 0 {
		return fmt.Errorf("realtime: Truncate: audioEndMS %d is negative", audioEndMS)
	}
	return s.sendControl(itemTruncateEvent{Type: "conversation.item.truncate", EventID: s.nextID(),
		ItemID: itemID, AudioEndMS: audioEndMS})
}

// CancelResponse stops the response in progress. The server answers with
// response.done (status cancelled), or an invalid_request_error event if no
// response was active, which callers can ignore.
func (s *Session) CancelResponse() error {
	return s.sendControl(responseCancelEvent{Type: "response.cancel", EventID: s.nextID()})
}

// Stats counts audio in both directions.
type Stats struct {
	InputChunks        int64 // SendAudio calls with audio
	InputSamples       int64
	InputChunksDropped int64 // of InputChunks: dropped because the socket fell behind
	OutputSamples      int64 // agent audio delivered on Events
	StaleOutputDeltas  int64 // agent audio discarded after Interrupt
}

// Stats returns the current counters.
func (s *Session) Stats() Stats {
	return Stats{
		InputChunks:        s.inChunks.Load(),
		InputSamples:       s.inSamples.Load(),
		InputChunksDropped: s.inDropped.Load(),
		OutputSamples:      s.outSamples.Load(),
		StaleOutputDeltas:  s.staleDeltas.Load(),
	}
}

func (s *Session) nextID() string { return fmt.Sprintf("evt_c%d", s.seq.Add(1)) }

func (s *Session) sendControl(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("realtime: encode client event: %w", err)
	}
	select {
	case <-s.done:
		return s.endedErr()
	default:
	}
	select {
	case s.control <- b:
		return nil
	case <-s.done:
		return s.endedErr()
	}
}

func (s *Session) endedErr() error {
	if err := s.Err(); err != nil {
		return err
	}
	return ErrClosed
}

// end records why the session ended and releases both loops: done stops the
// writer and any blocked send, closing the socket unblocks the reader. The
// cause is recorded before a polite close frame goes out, so the server's
// answering close cannot overwrite it.
func (s *Session) end(err error, polite bool) {
	s.endOnce.Do(func() {
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(s.done)
		s.in.mu.Lock()
		if s.in.flush != nil {
			s.in.flush.Stop()
		}
		s.in.mu.Unlock()
		if polite {
			s.closeFrame()
		}
		s.conn.Close()
		if err != nil {
			s.log.Info("realtime.session.ended", zap.Error(err))
		}
	})
}

func (s *Session) closeFrame() {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	_ = s.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
}

func (s *Session) write(b []byte) error {
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)); err != nil {
		return err
	}
	return s.conn.WriteMessage(websocket.TextMessage, b)
}

// touch pushes the read deadline out: anything from the server, pongs
// included, proves the connection is alive.
func (s *Session) touch() {
	if s.pingDeadline > 0 {
		_ = s.conn.SetReadDeadline(time.Now().Add(s.pingDeadline))
	}
}

func (s *Session) readLoop(pending []Event) {
	defer s.wg.Done()
	defer close(s.events)
	for _, ev := range pending {
		if s.observe(ev) && !s.emit(ev) {
			return
		}
	}
	// One buffer for every message: decoding copies out what it keeps.
	var buf bytes.Buffer
	for {
		mt, data, err := s.readMessage(&buf)
		if err != nil {
			s.end(s.closeError(err), false)
			return
		}
		s.touch()
		var ev Event
		if mt != websocket.TextMessage {
			ev = ErrorEvent{malformed("", data, errors.New("binary frame"))}
		} else {
			e, typ, err := decodeEvent(data)
			switch {
			case err != nil:
				ev = ErrorEvent{err}
			case e == nil:
				s.log.Debug("realtime.event.ignored", zap.String("type", typ))
				continue
			default:
				ev = e
			}
		}
		if s.observe(ev) && !s.emit(ev) {
			return
		}
	}
}

// keepReadBuffer is the most a session's read buffer keeps between
// messages; a rare larger one (a session.updated echoing long
// instructions) is let go.
const keepReadBuffer = 256 << 10

// readMessage is conn.ReadMessage into buf, which it reuses: audio deltas
// come many times a second, and ReadMessage makes a new buffer for each.
// data is valid until the next call.
func (s *Session) readMessage(buf *bytes.Buffer) (int, []byte, error) {
	if buf.Cap() > keepReadBuffer {
		*buf = bytes.Buffer{}
	}
	buf.Reset()
	mt, r, err := s.conn.NextReader()
	if err != nil {
		return mt, nil, err
	}
	if _, err := buf.ReadFrom(r); err != nil {
		return mt, nil, err
	}
	return mt, buf.Bytes(), nil
}

func (s *Session) emit(ev Event) bool {
	select {
	case s.events <- ev:
		return true
	case <-s.done:
		return false
	}
}

// observe keeps the bookkeeping barge-in needs and reports whether the event
// should reach the caller.
func (s *Session) observe(ev Event) bool {
	switch e := ev.(type) {
	case AudioDelta:
		s.mu.Lock()
		keep := s.play.onDelta(e.ItemID, e.ResponseID, len(e.PCM))
		s.mu.Unlock()
		if !keep {
			s.staleDeltas.Add(1)
			return false
		}
		s.outSamples.Add(int64(len(e.PCM)))
	case AudioDone:
		s.mu.Lock()
		s.play.onDone(e.ItemID)
		s.mu.Unlock()
	case ErrorEvent:
		var api *APIError
		if errors.As(e.Err, &api) && api.Fatal() {
			s.mu.Lock()
			s.fatal = api
			s.mu.Unlock()
		}
		s.log.Warn("realtime.server.error", zap.Error(e.Err))
	}
	return true
}

func (s *Session) writeLoop(ctx context.Context) {
	defer s.wg.Done()
	var ping <-chan time.Time
	if s.cfg.PingInterval > 0 {
		t := time.NewTicker(s.cfg.PingInterval)
		defer t.Stop()
		ping = t.C
	}
	for {
		var msg []byte
		var recycle *audioMsg
		select {
		case <-s.done:
			return
		case msg = <-s.control:
		default:
			select {
			case <-s.done:
				return
			case <-ctx.Done():
				s.end(fmt.Errorf("%w: %w", ErrClosed, context.Cause(ctx)), true)
				return
			case msg = <-s.control:
			case recycle = <-s.audio:
				msg = recycle.b
			case <-ping:
				if err := s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.cfg.WriteTimeout)); err != nil {
					s.end(s.closeError(fmt.Errorf("ping: %w", err)), false)
					return
				}
				continue
			}
		}
		err := s.write(msg)
		if recycle != nil {
			audioBufs.Put(recycle) // the socket copied it
		}
		if err != nil {
			s.end(s.closeError(fmt.Errorf("write: %w", err)), false)
			return
		}
	}
}

// closeError turns a socket error into a *CloseError carrying the close code
// and any session-ending API error that came first.
func (s *Session) closeError(err error) error {
	s.mu.Lock()
	cause := s.fatal
	s.mu.Unlock()
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return &CloseError{Code: ce.Code, Reason: ce.Text, Cause: cause}
	}
	reason := err.Error()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && s.pingDeadline > 0 {
		reason = fmt.Sprintf("nothing from the server, not even a pong, for %s", s.pingDeadline)
	}
	return &CloseError{Code: websocket.CloseAbnormalClosure, Reason: reason, Cause: cause}
}

// dialError explains a failed WebSocket handshake by its HTTP status.
func dialError(cfg Config, resp *http.Response, err error) error {
	if resp == nil {
		return fmt.Errorf("realtime: connect to %s: %w", cfg.BaseURL, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return statusError("connect to realtime", cfg.BaseURL, cfg.APIKey, cfg.Model, resp.StatusCode, body)
}
