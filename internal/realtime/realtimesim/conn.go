package realtimesim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/docshield/voice-worker/internal/telephony/heard"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"
)

// Wire shapes follow the GA reference:
// https://developers.openai.com/api/reference/resources/realtime/server-events
// https://developers.openai.com/api/reference/resources/realtime/client-events

// ev is a server event under construction; maps marshal with sorted keys,
// which keeps the output deterministic.
type ev = map[string]any

const frameMS = 20 // VAD frame

// conn is one client connection. Everything but the reader goroutine's
// socket reads happens on the engine goroutine (serve), so its fields need
// no locks; ignorePings is the exception, read by the ping handler.
type conn struct {
	srv    *Server
	id     int
	ws     *websocket.Conn
	script *Script
	log    *zap.Logger

	in          chan []byte   // client messages; closed by the reader when the client is gone
	quit        chan struct{} // closed when the engine stops
	readerDone  chan struct{}
	ignorePings atomic.Bool

	closed   bool // stop the engine
	graceful bool // we sent a close frame; let the client answer it
	timer    *time.Timer

	seq     int
	session map[string]any
	// settings the session asks for
	vadOn, createResponse, interruptResponse, transcribe bool
	silenceMS, prefixMS                                  int

	vad         vadState
	calleeTurns int
	lastItem    string
	nextTurn    int
	resp        *response
	sentAudio   map[string]int // assistant item → samples sent, for truncate checks
	counts      map[Point]int
	fired       map[int]bool
}

type vadState struct {
	buf      []int16 // the part of a frame not yet processed
	samples  int     // callee audio processed so far
	speaking bool
	run      int // loud frames in a row, before speech starts
	runStart int
	quiet    int // quiet frames in a row, during speech
	itemID   string
}

// response is the one response in progress: a queue of timed steps.
type response struct {
	id           string
	instructions string
	// turn is the script's agent turn it says (-1: none); sent is set once
	// any of it went out. A response cancelled before that gives its turn
	// back: a model interrupted while thinking says the same next time. A
	// silent turn (no text, no tool: the model waits) is not given back:
	// there is nothing left to say, and giving it back made the callee's
	// next turn get the silence again, so the script fell a turn behind.
	turn      int
	sent      bool
	queue     []step
	outputs   []map[string]any
	samples   int
	textChars int
}

type step struct {
	at time.Time
	do func()
}

func (r *response) add(at time.Time, do func()) { r.queue = append(r.queue, step{at, do}) }

func newConn(s *Server, id int, ws *websocket.Conn, model string) *conn {
	c := &conn{
		srv: s, id: id, ws: ws, script: &s.script,
		log:        s.log.With(zap.Int("sim_conn", id)),
		in:         make(chan []byte, 64),
		quit:       make(chan struct{}),
		readerDone: make(chan struct{}),
		sentAudio:  map[string]int{},
		counts:     map[Point]int{},
		fired:      map[int]bool{},
	}
	c.session = defaultSession(c.newID("sess"), model)
	c.applySession()
	ws.SetReadLimit(16 << 20)
	ws.SetPingHandler(func(data string) error {
		if c.ignorePings.Load() {
			return nil
		}
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		if err == websocket.ErrCloseSent {
			return nil
		}
		return err
	})
	return c
}

func (c *conn) serve() {
	go c.readLoop()
	c.send(ev{"type": "session.created", "event_id": c.newID("event"), "session": c.session})
	c.fault(AtConnect)
	c.loop()
	if c.graceful {
		c.drain()
	}
	close(c.quit)
	c.ws.Close()
	<-c.readerDone
	c.srv.rec.update(func(l *Log) { l.Disconnects++ })
}

// drain waits (at most a second) for the client to answer our close frame.
// Closing at once could reset the TCP connection and destroy the events we
// just sent before the client reads them.
func (c *conn) drain() {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case _, ok := <-c.in:
			if !ok {
				return
			}
		case <-t.C:
			return
		case <-c.srv.quit:
			return
		}
	}
}

func (c *conn) readLoop() {
	defer close(c.readerDone)
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			close(c.in)
			return
		}
		select {
		case c.in <- data:
		case <-c.quit:
			return
		}
	}
}

// loop handles client messages and runs the response's steps when due.
// When a step is due, pending client input still goes first, so a barge-in
// or a cancel lands between two audio chunks even when not paced.
func (c *conn) loop() {
	c.timer = time.NewTimer(time.Hour)
	defer c.timer.Stop()
	for !c.closed {
		var wake <-chan time.Time
		if c.resp != nil && len(c.resp.queue) > 0 {
			d := time.Until(c.resp.queue[0].at)
			if d <= 0 {
				select {
				case m, ok := <-c.in:
					if !ok {
						return
					}
					c.handle(m)
				case <-c.srv.quit:
					c.goingAway()
					return
				default:
					c.runStep()
				}
				continue
			}
			c.timer.Reset(d)
			wake = c.timer.C
		}
		select {
		case m, ok := <-c.in:
			if !ok {
				return
			}
			c.handle(m)
		case <-wake:
		case <-c.srv.quit:
			c.goingAway()
			return
		}
	}
}

func (c *conn) runStep() {
	st := c.resp.queue[0]
	c.resp.queue = c.resp.queue[1:]
	c.resp.sent = true
	st.do()
}

func (c *conn) goingAway() {
	_ = c.ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseGoingAway, "simulator shutting down"), time.Now().Add(time.Second))
}

func (c *conn) newID(prefix string) string {
	c.seq++
	return fmt.Sprintf("%s_sim%d_%d", prefix, c.id, c.seq)
}

func (c *conn) send(e ev) {
	if c.closed {
		return
	}
	b, err := json.Marshal(e)
	if err != nil {
		c.log.Error("realtimesim.encode", zap.Error(err))
		c.closed = true
		return
	}
	c.sendRaw(b)
}

func (c *conn) sendRaw(b []byte) {
	if c.closed {
		return
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		c.log.Debug("realtimesim.write", zap.Error(err))
		c.closed = true
	}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (c *conn) sendError(typ, code, msg, param, eventID string) {
	c.send(ev{"type": "error", "event_id": c.newID("event"), "error": ev{
		"type": typ, "code": nullable(code), "message": msg, "param": nullable(param), "event_id": nullable(eventID)}})
}

func (c *conn) closeWith(code int, text string) {
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
	c.closed, c.graceful = true, true
}

// fault counts an occurrence of p and performs the faults scripted for it,
// in script order. It reports whether any fired.
func (c *conn) fault(p Point) bool {
	c.counts[p]++
	fired := false
	for i, f := range c.script.Faults {
		if f.At != p || f.N != c.counts[p] || c.fired[i] {
			continue
		}
		c.fired[i], fired = true, true
		c.srv.rec.update(func(l *Log) { l.Faults = append(l.Faults, f) })
		c.log.Info("realtimesim.fault", zap.String("at", string(p)), zap.String("do", string(f.Do)))
		c.do(f.Do)
	}
	return fired
}

func (c *conn) do(a Action) {
	switch a {
	case RateLimit:
		c.sendError("rate_limit_error", "rate_limit_exceeded", "Rate limit reached for tokens (simulated). Please try again later.", "", "")
	case ServerError:
		c.sendError("server_error", "", "The server had an error while processing your request (simulated).", "", "")
	case FailResponse:
		r := &response{id: c.newID("resp")}
		c.srv.rec.update(func(l *Log) {
			l.Responses = append(l.Responses, ResponseRecord{Conn: c.id, ID: r.id, Status: "failed"})
		})
		c.send(ev{"type": "response.created", "event_id": c.newID("event"), "response": c.responseObject(r, "in_progress", nil)})
		c.send(ev{"type": "response.done", "event_id": c.newID("event"), "response": c.responseObject(r, "failed", ev{
			"type": "failed", "error": ev{"type": "server_error", "code": "server_error", "message": "The response failed (simulated)."}})})
	case SessionExpired:
		c.sendError("invalid_request_error", "session_expired", "Your session hit the maximum duration of 60 minutes.", "", "")
		c.closeWith(websocket.CloseNormalClosure, "")
	case Drop:
		c.ws.Close()
		c.closed = true
	case CloseSocket:
		c.closeWith(websocket.CloseInternalServerErr, "simulated server failure")
	case Malformed:
		c.sendRaw([]byte(`{"type":"response.output_audio.delta","delta":`))
	case UnknownEvent:
		c.send(ev{"type": "sim.future_event", "event_id": c.newID("event"), "payload": ev{"hint": "clients must ignore unknown events"}})
	case IgnorePings:
		c.ignorePings.Store(true)
	}
}

func (c *conn) record(typ string, data []byte) {
	raw := json.RawMessage(append([]byte(nil), data...))
	c.srv.rec.update(func(l *Log) { l.Events = append(l.Events, ClientEvent{Conn: c.id, Type: typ, Raw: raw}) })
}

// appendEvent is input_audio_buffer.append, decoded in one pass: a call
// sends 50 a second.
type appendEvent struct {
	Type    string `json:"type"`
	EventID string `json:"event_id"`
	Audio   string `json:"audio"`
}

func (c *conn) handle(data []byte) {
	if bytes.HasPrefix(data, []byte(`{"type":"input_audio_buffer.append"`)) {
		var a appendEvent
		if err := json.Unmarshal(data, &a); err == nil && a.Type == "input_audio_buffer.append" {
			c.appendAudio(data, a.EventID, a.Audio)
			return
		}
	}
	var head struct {
		Type    string `json:"type"`
		EventID string `json:"event_id"`
	}
	if err := json.Unmarshal(data, &head); err != nil || head.Type == "" {
		c.record("", data)
		c.sendError("invalid_request_error", "invalid_json", "We could not parse the JSON body of your request.", "", "")
		return
	}
	if head.Type == "input_audio_buffer.append" {
		var a appendEvent
		_ = json.Unmarshal(data, &a)
		c.appendAudio(data, head.EventID, a.Audio)
		return
	}
	c.record(head.Type, data)
	switch head.Type {
	case "session.update":
		c.sessionUpdate(data, head.EventID)
	case "response.create":
		c.responseCreate(data, head.EventID)
	case "response.cancel":
		if !c.cancelResponse("client_cancelled") {
			c.sendError("invalid_request_error", "response_cancel_not_active", "Cancellation failed: no active response found.", "", head.EventID)
		}
	case "conversation.item.create":
		c.itemCreate(data, head.EventID)
	case "conversation.item.truncate":
		c.itemTruncate(data, head.EventID)
	case "input_audio_buffer.commit":
		id := c.newID("item")
		c.send(ev{"type": "input_audio_buffer.committed", "event_id": c.newID("event"), "item_id": id, "previous_item_id": nullable(c.lastItem)})
		c.lastItem = id
	case "input_audio_buffer.clear":
		c.vad = vadState{samples: c.vad.samples}
		c.send(ev{"type": "input_audio_buffer.cleared", "event_id": c.newID("event")})
	default:
		c.sendError("invalid_request_error", "invalid_value", fmt.Sprintf("Invalid value: '%s'. Supported values are the Realtime client events.", head.Type), "type", head.EventID)
	}
}

// --- session ---

func pcmFormat() map[string]any { return map[string]any{"type": "audio/pcm", "rate": 24000.0} }

func defaultSession(id, model string) map[string]any {
	return map[string]any{
		"type": "realtime", "object": "realtime.session", "id": id, "model": model,
		"output_modalities": []any{"audio"}, "instructions": "", "tools": []any{}, "tool_choice": "auto",
		"max_output_tokens": "inf", "expires_at": float64(time.Now().Add(time.Hour).Unix()),
		"audio": map[string]any{
			"input": map[string]any{
				"format": pcmFormat(), "transcription": nil, "noise_reduction": nil,
				"turn_detection": map[string]any{"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300.0,
					"silence_duration_ms": 500.0, "create_response": true, "interrupt_response": true, "idle_timeout_ms": nil},
			},
			"output": map[string]any{"format": pcmFormat(), "voice": "alloy", "speed": 1.0},
		},
	}
}

func (c *conn) sessionUpdate(data []byte, eventID string) {
	var w struct {
		Session map[string]any `json:"session"`
	}
	if err := json.Unmarshal(data, &w); err != nil || w.Session == nil {
		c.sendError("invalid_request_error", "missing_required_parameter", "Missing required parameter: 'session'.", "session", eventID)
		return
	}
	if c.fault(AtSessionUpdate) {
		return
	}
	if code, param, msg := checkGA(w.Session); code != "" {
		c.sendError("invalid_request_error", code, msg, param, eventID)
		return
	}
	merge(c.session, w.Session)
	c.applySession()
	c.send(ev{"type": "session.updated", "event_id": c.newID("event"), "session": c.session})
}

// betaKeys are session fields of the deprecated beta protocol. The GA server
// rejects them, and so does the simulator, so a client that regresses to
// the beta shape fails its tests.
var betaKeys = []string{"modalities", "voice", "input_audio_format", "output_audio_format",
	"input_audio_transcription", "turn_detection"}

// checkGA validates a session.update the way the GA server would, returning
// an error code, param and message, or "" when it is acceptable.
func checkGA(s map[string]any) (code, param, msg string) {
	switch t, ok := s["type"]; {
	case !ok:
		return "missing_required_parameter", "session.type", "Missing required parameter: 'session.type'."
	case t != "realtime":
		return "invalid_value", "session.type", fmt.Sprintf("Invalid value: '%v'. Supported values are: 'realtime' (and 'transcription', not simulated).", t)
	}
	for _, k := range betaKeys {
		if _, ok := s[k]; ok {
			return "unknown_parameter", "session." + k, fmt.Sprintf("Unknown parameter: 'session.%s'.", k)
		}
	}
	for _, dir := range []string{"input", "output"} {
		f, ok := dig(s, "audio", dir, "format").(map[string]any)
		if !ok {
			if dig(s, "audio", dir, "format") != nil {
				return "invalid_type", "session.audio." + dir + ".format", "Invalid type for 'session.audio." + dir + ".format': expected an object."
			}
			continue
		}
		if f["type"] != "audio/pcm" {
			return "invalid_value", "session.audio." + dir + ".format.type", fmt.Sprintf("The simulator speaks audio/pcm only, got %v.", f["type"])
		}
		if r, ok := f["rate"]; ok && r != 24000.0 {
			return "invalid_value", "session.audio." + dir + ".format.rate", fmt.Sprintf("Invalid value: %v. Supported values are: 24000.", r)
		}
	}
	if td, ok := dig(s, "audio", "input", "turn_detection").(map[string]any); ok {
		if t := td["type"]; t != "server_vad" && t != "semantic_vad" {
			return "invalid_value", "session.audio.input.turn_detection.type", fmt.Sprintf("Invalid value: '%v'. Supported values are: 'server_vad' and 'semantic_vad'.", t)
		}
	}
	if tools, ok := s["tools"].([]any); ok {
		for i, t := range tools {
			m, _ := t.(map[string]any)
			if m["type"] != "function" || m["name"] == nil || m["name"] == "" {
				return "invalid_value", fmt.Sprintf("session.tools[%d]", i), "Each tool needs type 'function' and a name."
			}
		}
	}
	return "", "", ""
}

func dig(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

// merge applies a partial update: objects merge, anything else replaces.
func merge(dst, src map[string]any) {
	for k, v := range src {
		if sv, ok := v.(map[string]any); ok {
			if dv, ok := dst[k].(map[string]any); ok {
				merge(dv, sv)
				continue
			}
		}
		dst[k] = v
	}
}

func (c *conn) applySession() {
	num := func(v any, def int) int {
		if f, ok := v.(float64); ok {
			return int(f)
		}
		return def
	}
	flag := func(v any) bool { b, ok := v.(bool); return !ok || b }
	td, _ := dig(c.session, "audio", "input", "turn_detection").(map[string]any)
	c.vadOn = td != nil
	c.createResponse = flag(td["create_response"])
	c.interruptResponse = flag(td["interrupt_response"])
	c.silenceMS = num(td["silence_duration_ms"], 500)
	c.prefixMS = num(td["prefix_padding_ms"], 300)
	c.transcribe = dig(c.session, "audio", "input", "transcription") != nil
}

// --- callee audio and VAD ---

func samplesToMS(n int) int { return n * 1000 / SampleRate }

func (c *conn) appendAudio(data []byte, eventID, audio string) {
	pcm, err := decodePCM(audio)
	if err != nil {
		c.record("input_audio_buffer.append", data)
		c.sendError("invalid_request_error", "invalid_value", "Invalid 'audio'. Expected base64-encoded pcm16 audio at 24000 Hz: "+err.Error(), "audio", eventID)
		return
	}
	c.srv.rec.update(func(l *Log) { l.AudioAppends++; l.AudioSamples += len(pcm) })
	v := &c.vad
	v.buf = append(v.buf, pcm...)
	frame := SampleRate * frameMS / 1000
	i := 0
	for ; i+frame <= len(v.buf) && !c.closed; i += frame {
		c.vadFrame(v.buf[i : i+frame])
	}
	v.buf = append(v.buf[:0], v.buf[i:]...)
}

// vadFrame is an energy detector: MinSpeechMS of loud 20 ms frames start a
// turn, silence_duration_ms of quiet frames end it.
func (c *conn) vadFrame(f []int16) {
	v := &c.vad
	start := v.samples
	v.samples += len(f)
	if !c.vadOn {
		return
	}
	loud := heard.RMS(f) >= c.script.VAD.ThresholdRMS
	if !v.speaking {
		if !loud {
			v.run = 0
			return
		}
		if v.run == 0 {
			v.runStart = start
		}
		v.run++
		if v.run*frameMS >= c.script.VAD.MinSpeechMS {
			c.speechStarted()
		}
		return
	}
	if loud {
		v.quiet = 0
		return
	}
	v.quiet++
	if v.quiet*frameMS >= c.silenceMS {
		c.speechStopped()
	}
}

func (c *conn) speechStarted() {
	v := &c.vad
	v.speaking, v.run, v.quiet = true, 0, 0
	v.itemID = c.newID("item")
	startMS := max(0, samplesToMS(v.runStart)-c.prefixMS)
	c.send(ev{"type": "input_audio_buffer.speech_started", "event_id": c.newID("event"), "audio_start_ms": startMS, "item_id": v.itemID})
	turn := CalleeTurn{Conn: c.id, ItemID: v.itemID, AudioStartMS: startMS}
	c.srv.rec.update(func(l *Log) { l.CalleeTurns = append(l.CalleeTurns, turn) })
	if c.interruptResponse {
		c.cancelResponse("turn_detected")
	}
}

func (c *conn) speechStopped() {
	v := &c.vad
	v.speaking = false
	itemID, endMS := v.itemID, samplesToMS(v.samples)
	c.send(ev{"type": "input_audio_buffer.speech_stopped", "event_id": c.newID("event"), "audio_end_ms": endMS, "item_id": itemID})
	prev := c.lastItem
	c.lastItem = itemID
	c.send(ev{"type": "input_audio_buffer.committed", "event_id": c.newID("event"), "item_id": itemID, "previous_item_id": nullable(prev)})
	c.send(ev{"type": "conversation.item.added", "event_id": c.newID("event"), "previous_item_id": nullable(prev), "item": ev{
		"id": itemID, "object": "realtime.item", "type": "message", "role": "user", "status": "completed",
		"content": []any{ev{"type": "input_audio", "transcript": nil}}}})
	k := c.calleeTurns
	c.calleeTurns++
	transcript := ""
	if k < len(c.script.Callee) {
		transcript = c.script.Callee[k]
	}
	if c.transcribe {
		c.send(ev{"type": "conversation.item.input_audio_transcription.completed", "event_id": c.newID("event"),
			"item_id": itemID, "content_index": 0, "transcript": transcript,
			"usage": ev{"type": "duration", "seconds": float64(endMS) / 1000}})
	}
	c.srv.rec.update(func(l *Log) {
		for i := range l.CalleeTurns {
			if t := &l.CalleeTurns[i]; t.Conn == c.id && t.ItemID == itemID {
				t.AudioEndMS, t.Transcript = endMS, transcript
			}
		}
	})
	if c.fault(AtSpeechStopped) {
		return
	}
	if c.createResponse && c.resp == nil {
		c.startResponse("", "")
	}
}

// --- conversation items ---

func (c *conn) itemCreate(data []byte, eventID string) {
	var w struct {
		Item map[string]any `json:"item"`
	}
	if err := json.Unmarshal(data, &w); err != nil || w.Item == nil {
		c.sendError("invalid_request_error", "missing_required_parameter", "Missing required parameter: 'item'.", "item", eventID)
		return
	}
	switch w.Item["type"] {
	case "function_call_output":
		callID, _ := w.Item["call_id"].(string)
		output, _ := w.Item["output"].(string)
		if callID == "" {
			c.sendError("invalid_request_error", "missing_required_parameter", "Missing required parameter: 'item.call_id'.", "item.call_id", eventID)
			return
		}
		c.srv.rec.update(func(l *Log) {
			l.ToolOutputs = append(l.ToolOutputs, ToolOutput{Conn: c.id, CallID: callID, Output: output})
		})
	case "message":
	default:
		c.sendError("invalid_request_error", "invalid_value", fmt.Sprintf("Invalid value: '%v'. Supported values are: 'message', 'function_call', and 'function_call_output'.", w.Item["type"]), "item.type", eventID)
		return
	}
	id, _ := w.Item["id"].(string)
	if id == "" {
		id = c.newID("item")
	}
	w.Item["id"], w.Item["object"], w.Item["status"] = id, "realtime.item", "completed"
	prev := c.lastItem
	c.lastItem = id
	c.send(ev{"type": "conversation.item.added", "event_id": c.newID("event"), "previous_item_id": nullable(prev), "item": w.Item})
	c.send(ev{"type": "conversation.item.done", "event_id": c.newID("event"), "previous_item_id": nullable(prev), "item": w.Item})
}

func (c *conn) itemTruncate(data []byte, eventID string) {
	var w struct {
		ItemID       string `json:"item_id"`
		ContentIndex int    `json:"content_index"`
		AudioEndMS   *int   `json:"audio_end_ms"`
	}
	if err := json.Unmarshal(data, &w); err != nil || w.AudioEndMS == nil {
		c.sendError("invalid_request_error", "missing_required_parameter", "Missing required parameter: 'audio_end_ms'.", "audio_end_ms", eventID)
		return
	}
	c.srv.rec.update(func(l *Log) {
		l.Truncates = append(l.Truncates, Truncate{Conn: c.id, ItemID: w.ItemID, ContentIndex: w.ContentIndex, AudioEndMS: *w.AudioEndMS})
	})
	sent, ok := c.sentAudio[w.ItemID]
	switch {
	case !ok:
		c.sendError("invalid_request_error", "item_truncate_invalid_item_id", "Item with item_id not found: "+w.ItemID, "item_id", eventID)
	case *w.AudioEndMS < 0 || *w.AudioEndMS > samplesToMS(sent):
		c.sendError("invalid_request_error", "invalid_value", fmt.Sprintf("audio_end_ms %d is outside the item's %d ms of audio.", *w.AudioEndMS, samplesToMS(sent)), "audio_end_ms", eventID)
	default:
		c.send(ev{"type": "conversation.item.truncated", "event_id": c.newID("event"), "item_id": w.ItemID,
			"content_index": w.ContentIndex, "audio_end_ms": *w.AudioEndMS})
	}
}

// --- responses ---

func (c *conn) responseCreate(data []byte, eventID string) {
	var w struct {
		Response struct {
			Instructions string `json:"instructions"`
		} `json:"response"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		c.sendError("invalid_request_error", "invalid_type", "Invalid 'response': "+err.Error(), "response", eventID)
		return
	}
	if c.fault(AtResponseCreate) {
		return
	}
	c.startResponse(w.Response.Instructions, eventID)
}

func (c *conn) startResponse(instructions, eventID string) {
	if c.resp != nil {
		c.sendError("invalid_request_error", "conversation_already_has_active_response",
			"Conversation already has an active response in progress: "+c.resp.id+". Wait until the response is finished before creating a new one.", "", eventID)
		return
	}
	r := &response{id: c.newID("resp"), instructions: instructions, turn: -1}
	if c.nextTurn < len(c.script.Agent) {
		r.turn = c.nextTurn
	}
	c.resp = r
	c.srv.rec.update(func(l *Log) {
		l.Responses = append(l.Responses, ResponseRecord{Conn: c.id, ID: r.id, Status: "in_progress", Instructions: instructions, Turn: r.turn})
	})
	c.send(ev{"type": "response.created", "event_id": c.newID("event"), "response": c.responseObject(r, "in_progress", nil)})
	c.send(ev{"type": "rate_limits.updated", "event_id": c.newID("event"), "rate_limits": []any{
		ev{"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
		ev{"name": "tokens", "limit": 400000, "remaining": 395000, "reset_seconds": 0.75}}})

	at := time.Now().Add(time.Duration(c.script.ResponseDelayMS) * time.Millisecond)
	if c.nextTurn < len(c.script.Agent) {
		idx := c.nextTurn
		c.nextTurn++
		turn := c.script.Agent[idx]
		if pcm := c.srv.turnAudio[idx]; len(pcm) > 0 {
			at = c.planMessage(r, turn.Text, pcm, at)
		}
		if turn.Tool != nil {
			c.planToolCall(r, *turn.Tool, at)
		}
	}
	r.add(at, func() { c.finishResponse(r, "completed", nil) })
}

// planMessage queues an assistant audio message and returns when it ends.
func (c *conn) planMessage(r *response, text string, pcm []int16, at time.Time) time.Time {
	itemID := c.newID("item")
	out := len(r.outputs)
	item := ev{"id": itemID, "object": "realtime.item", "type": "message", "role": "assistant", "status": "in_progress", "content": []any{}}
	r.outputs = append(r.outputs, item)
	ids := ev{"response_id": r.id, "item_id": itemID, "output_index": out, "content_index": 0}
	with := func(typ string, kv ...any) ev {
		e := ev{"type": typ, "event_id": c.newID("event")}
		for k, v := range ids {
			e[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			e[kv[i].(string)] = kv[i+1]
		}
		return e
	}
	r.add(at, func() {
		c.sentAudio[itemID] = 0
		c.send(ev{"type": "response.output_item.added", "event_id": c.newID("event"), "response_id": r.id, "output_index": out, "item": item})
		c.send(ev{"type": "conversation.item.added", "event_id": c.newID("event"), "previous_item_id": nullable(c.lastItem), "item": item})
		c.lastItem = itemID
		c.send(with("response.content_part.added", "part", ev{"type": "audio", "transcript": ""}))
	})

	chunk := SampleRate * c.script.ChunkMS / 1000
	chunkDur := time.Duration(c.script.ChunkMS) * time.Millisecond
	n := (len(pcm) + chunk - 1) / chunk
	words := strings.Fields(text)
	for i := range n {
		lo, hi := i*chunk, min((i+1)*chunk, len(pcm))
		// Spread the words over the chunks, as the real transcript trickles
		// in alongside the audio.
		var deltas []string
		for w := range words {
			if w*n/len(words) == i {
				d := words[w]
				if w > 0 {
					d = " " + d
				}
				deltas = append(deltas, d)
			}
		}
		when := at
		if c.script.Paced {
			when = at.Add(time.Duration(i) * chunkDur)
		}
		r.add(when, func() {
			c.send(with("response.output_audio.delta", "delta", encodePCM(pcm[lo:hi])))
			c.sentAudio[itemID] += hi - lo
			r.samples += hi - lo
			for _, d := range deltas {
				c.send(with("response.output_audio_transcript.delta", "delta", d))
			}
			c.fault(AtAudioDelta)
		})
	}
	end := at
	if c.script.Paced {
		end = at.Add(time.Duration(n) * chunkDur)
	}
	r.add(end, func() {
		transcript := strings.Join(words, " ")
		r.textChars += len(transcript)
		c.send(with("response.output_audio.done"))
		c.send(with("response.output_audio_transcript.done", "transcript", transcript))
		c.send(with("response.content_part.done", "part", ev{"type": "audio", "transcript": transcript}))
		item["status"] = "completed"
		item["content"] = []any{ev{"type": "output_audio", "transcript": transcript}}
		c.send(ev{"type": "response.output_item.done", "event_id": c.newID("event"), "response_id": r.id, "output_index": out, "item": item})
	})
	return end
}

func (c *conn) planToolCall(r *response, tool ToolCall, at time.Time) {
	itemID, callID := c.newID("item"), c.newID("call")
	args := string(tool.Arguments)
	if args == "" {
		args = "{}"
	}
	out := len(r.outputs)
	item := ev{"id": itemID, "object": "realtime.item", "type": "function_call", "status": "in_progress",
		"name": tool.Name, "call_id": callID, "arguments": ""}
	r.outputs = append(r.outputs, item)
	r.add(at, func() {
		c.send(ev{"type": "response.output_item.added", "event_id": c.newID("event"), "response_id": r.id, "output_index": out, "item": item})
		c.send(ev{"type": "conversation.item.added", "event_id": c.newID("event"), "previous_item_id": nullable(c.lastItem), "item": item})
		c.lastItem = itemID
		c.send(ev{"type": "response.function_call_arguments.delta", "event_id": c.newID("event"), "response_id": r.id,
			"item_id": itemID, "output_index": out, "call_id": callID, "delta": args})
		c.send(ev{"type": "response.function_call_arguments.done", "event_id": c.newID("event"), "response_id": r.id,
			"item_id": itemID, "output_index": out, "call_id": callID, "name": tool.Name, "arguments": args})
		item["status"], item["arguments"] = "completed", args
		c.send(ev{"type": "response.output_item.done", "event_id": c.newID("event"), "response_id": r.id, "output_index": out, "item": item})
		c.srv.rec.update(func(l *Log) {
			for i := range l.Responses {
				if l.Responses[i].ID == r.id {
					l.Responses[i].ToolCallID = callID
				}
			}
		})
	})
}

// cancelResponse ends the active response early; false if there was none.
func (c *conn) cancelResponse(reason string) bool {
	r := c.resp
	if r == nil {
		return false
	}
	for _, o := range r.outputs {
		if o["status"] == "in_progress" {
			o["status"] = "incomplete"
		}
	}
	if !r.sent && r.turn >= 0 && c.nextTurn == r.turn+1 && !c.script.Agent[r.turn].silent() {
		c.nextTurn = r.turn
	}
	c.finishResponse(r, "cancelled", ev{"type": "cancelled", "reason": reason})
	return true
}

func (c *conn) finishResponse(r *response, status string, details ev) {
	r.queue = nil
	c.resp = nil
	// Only outputs that were announced belong in response.done.
	var started []map[string]any
	for _, o := range r.outputs {
		if _, ok := c.sentAudio[o["id"].(string)]; ok || o["type"] == "function_call" && o["arguments"] != "" {
			started = append(started, o)
		}
	}
	r.outputs = started
	c.send(ev{"type": "response.done", "event_id": c.newID("event"), "response": c.responseObject(r, status, details)})
	reason, _ := details["reason"].(string)
	c.srv.rec.update(func(l *Log) {
		for i := range l.Responses {
			if l.Responses[i].ID == r.id {
				l.Responses[i].Status, l.Responses[i].Reason, l.Responses[i].AudioSamples = status, reason, r.samples
			}
		}
	})
}

func (c *conn) responseObject(r *response, status string, details ev) ev {
	obj := ev{"id": r.id, "object": "realtime.response", "status": status, "status_details": details,
		"output": r.outputs, "output_modalities": []any{"audio"}, "conversation_id": fmt.Sprintf("conv_sim%d", c.id),
		"audio": ev{"output": ev{"format": pcmFormat(), "voice": dig(c.session, "audio", "output", "voice")}}, "usage": nil}
	if status == "in_progress" {
		obj["output"] = []any{}
		return obj
	}
	// Plausible, deterministic usage: about 20 audio tokens a second out, 10
	// in, and a token per four characters of text.
	audioOut := r.samples / 1200
	textOut := r.textChars / 4
	for _, o := range r.outputs {
		if s, ok := o["arguments"].(string); ok {
			textOut += len(s) / 4
		}
	}
	audioIn := c.vad.samples / 2400
	instr, _ := c.session["instructions"].(string)
	textIn := (len(instr)+len(r.instructions))/4 + 10
	obj["usage"] = ev{
		"total_tokens": audioOut + textOut + audioIn + textIn, "input_tokens": audioIn + textIn, "output_tokens": audioOut + textOut,
		"input_token_details":  ev{"text_tokens": textIn, "audio_tokens": audioIn, "cached_tokens": 0},
		"output_token_details": ev{"text_tokens": textOut, "audio_tokens": audioOut},
	}
	return obj
}
