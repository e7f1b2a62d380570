package sipphone

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/emiago/diago"
	"github.com/emiago/diago/media"
	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"
)

// Errors a call's script ends with (Call.Err).
var (
	// ErrHungUp: the caller hung up (BYE) before the script was done.
	ErrHungUp = errors.New("sipphone: the caller hung up")
	// ErrPhoneClosed: the phone was closed during the call.
	ErrPhoneClosed = errors.New("sipphone: the phone was closed")
)

// Party is who ended a call.
type Party string

// The two ends of a call.
const (
	PartyCaller Party = "caller" // BYE or CANCEL from the caller (livekit-sip)
	PartyPhone  Party = "phone"  // the phone refused, hung up, or completed a transfer
)

// Event is one SIP message of a call as the phone saw it: a request it
// received or sent (Status 0), or a response it sent (Status, and Method
// of the request answered).
type Event struct {
	At     time.Time
	Sent   bool
	Method string
	Status int
}

func (e Event) String() string {
	dir := "received"
	if e.Sent {
		dir = "sent"
	}
	if e.Status != 0 {
		return fmt.Sprintf("%s %d (%s)", dir, e.Status, e.Method)
	}
	return dir + " " + e.Method
}

// Marked is a Mark step reached.
type Marked struct {
	Name string
	At   time.Time
}

// Transferred is a REFER the phone received.
type Transferred struct {
	At     time.Time
	Target string // the Refer-To value as sent, e.g. "tel:+15551230000" or "<sip:desk@pbx>"
	// Status is what the phone answered: the REFER's refusal status, or
	// the transfer's final status as NOTIFY reported it (0 until then).
	Status int
}

// URI is the target without angle brackets or header parameters.
func (t Transferred) URI() string {
	v := strings.TrimSpace(t.Target)
	if strings.HasPrefix(v, "<") {
		if end := strings.IndexByte(v, '>'); end > 0 {
			return v[1:end]
		}
	}
	return v
}

// Record is everything observed on one call (one SIP Call-ID: a
// challenged INVITE and its authenticated retry are one call).
type Record struct {
	CallID    string
	Number    string // dialed: the user part of the Request-URI
	From      string // the caller's user part (the trunk's number)
	Transport string // UDP or TCP
	Auth      AuthResult
	Codec     Codec   // the law answered with; "" if not answered
	Events    []Event // SIP messages in order
	// Status is the final response to the INVITE: 200 when answered, the
	// refusal, 487 when the caller cancelled; 0 while undecided.
	Status    int
	Rang      time.Time // 180 sent
	Answered  time.Time // ACK received for our 200
	Ended     time.Time
	HungUpBy  Party
	EndReason string // "bye", "cancel", "refused", "script", "transferred", "max call", "phone closed", ...
	Digits    []Digit
	Transfers []Transferred
	Marks     []Marked
	Said      []Utterance
}

// Responses are the statuses the phone sent to INVITEs, in order.
func (r Record) Responses() []int {
	var out []int
	for _, e := range r.Events {
		if e.Sent && e.Status != 0 && e.Method == string(sip.INVITE) {
			out = append(out, e.Status)
		}
	}
	return out
}

// FirstRequest is when the phone first received (sent false) or sent (sent
// true) a request of method m: when the BYE came, say.
func (r Record) FirstRequest(sent bool, m sip.RequestMethod) (time.Time, bool) {
	for _, e := range r.Events {
		if e.Sent == sent && e.Status == 0 && e.Method == string(m) {
			return e.At, true
		}
	}
	return time.Time{}, false
}

// Keys are the DTMF digits received, in order.
func (r Record) Keys() string {
	var b strings.Builder
	for _, d := range r.Digits {
		b.WriteRune(d.Key)
	}
	return b.String()
}

// Mark returns when the script reached the named Mark step.
func (r Record) Mark(name string) (time.Time, bool) {
	for _, m := range r.Marks {
		if m.Name == name {
			return m.At, true
		}
	}
	return time.Time{}, false
}

// Call is one call to the phone. The goroutine serving its INVITE owns it
// (rings, answers, runs the script, tears it down); its listener and
// speaker goroutines and any transfer it completes are the call's and end
// before Done closes. What they observe goes into the Record under mu.
type Call struct {
	// Immutable after the call is registered.
	id, number string // Call-ID, dialed number
	heard      *Recording
	mouth      *speaker
	log        *zap.Logger
	phoneDone  <-chan struct{}
	done       chan struct{}
	latency    time.Duration // before each response (Config.Latency); set before the call is served

	wg sync.WaitGroup // listener, speaker and transfer goroutines; Add only under mu with dialog set

	mu       sync.Mutex // guards the fields below
	rec      Record
	dialog   *diago.DialogServerSession // the answered dialog while the call is up
	transfer Transfer                   // how the script answers a REFER
	err      error
	changed  chan struct{} // closed and replaced on every change of rec
	claimed  bool          // returned by Phone.WaitCall (guarded by the phone's mu)
}

func newCall(rec Record, heard *Recording, phoneDone <-chan struct{}, log *zap.Logger) *Call {
	c := &Call{
		id:        rec.CallID,
		number:    rec.Number,
		heard:     heard,
		log:       log.With(logging.Phone("number", rec.Number), zap.String("call_id", rec.CallID)),
		phoneDone: phoneDone,
		done:      make(chan struct{}),
		rec:       rec,
		changed:   make(chan struct{}),
	}
	c.mouth = &speaker{notify: func() { c.update(func(*Record) {}) }}
	return c
}

// Record returns a copy of everything observed so far.
func (c *Call) Record() Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshot()
}

// snapshot copies the record; called with mu held (mu is taken before
// the speaker's lock, never after).
func (c *Call) snapshot() Record {
	r := c.rec
	r.Said = c.mouth.utterances()
	r.Events = append([]Event(nil), r.Events...)
	r.Digits = append([]Digit(nil), r.Digits...)
	r.Transfers = append([]Transferred(nil), r.Transfers...)
	r.Marks = append([]Marked(nil), r.Marks...)
	return r
}

// Wait returns the record once cond holds for it, re-checking on every
// SIP event, digit, mark, transfer or utterance (not on heard audio: see
// Heard).
func (c *Call) Wait(ctx context.Context, cond func(Record) bool) (Record, error) {
	for {
		c.mu.Lock()
		r, ch := c.snapshot(), c.changed
		c.mu.Unlock()
		if cond(r) {
			return r, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return r, ctx.Err()
		}
	}
}

// Heard is what the phone heard from the caller.
func (c *Call) Heard() *Recording { return c.heard }

// Done is closed when the call is over and all its goroutines ended.
func (c *Call) Done() <-chan struct{} { return c.done }

// Err is the script's outcome once Done is closed: nil (the steps ran, or
// the phone ended the call itself), ErrHungUp, ErrPhoneClosed or another
// failure.
func (c *Call) Err() error {
	<-c.done
	return c.err
}

func (c *Call) update(f func(*Record)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.updateLocked(f)
}

func (c *Call) updateLocked(f func(*Record)) {
	f(&c.rec)
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *Call) event(sent bool, method sip.RequestMethod, status int) {
	c.update(func(r *Record) { r.addEvent(Event{At: time.Now(), Sent: sent, Method: string(method), Status: status}) })
}

// addEvent keeps Events in time order: a final response is recorded
// when it was sent but only known sent once acknowledged, and requests
// of the same call are handled concurrently.
func (r *Record) addEvent(e Event) {
	r.Events = append(r.Events, e)
	for i := len(r.Events) - 1; i > 0 && r.Events[i-1].At.After(e.At); i-- {
		r.Events[i], r.Events[i-1] = r.Events[i-1], r.Events[i]
	}
}

// respond sends a response to the INVITE and records it when it was
// sent: a final one returns only once acknowledged.
func (c *Call) respond(d *diago.DialogServerSession, status int, reason string, headers ...sip.Header) error {
	c.delay()
	at := time.Now()
	err := d.Respond(status, reason, nil, headers...)
	if err != nil {
		c.log.Warn("sipphone.respond_failed", zap.Int("status", status), zap.Error(err))
		return err
	}
	c.update(func(r *Record) { r.addEvent(Event{At: at, Sent: true, Method: string(sip.INVITE), Status: status}) })
	return nil
}

// delay is the network's delay before a response goes out.
func (c *Call) delay() {
	if c.latency > 0 {
		time.Sleep(c.latency)
	}
}

// ended records how the call ended; the first account wins (a BYE from
// each side may cross).
func (c *Call) ended(by Party, reason string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rec.HungUpBy != "" {
		return false
	}
	c.updateLocked(func(r *Record) { r.HungUpBy, r.EndReason = by, reason })
	return true
}

// callerBye records a BYE from the caller, before the dialog acts on it.
func (c *Call) callerBye() {
	c.event(false, sip.BYE, 0)
	c.ended(PartyCaller, "bye")
}

// byeTimeout bounds waiting for the caller to answer our BYE.
const byeTimeout = 5 * time.Second

// hangUp sends BYE unless the call already ended. Safe from any of the
// call's goroutines; only the first caller sends.
func (c *Call) hangUp(reason string) {
	c.mu.Lock()
	d := c.dialog
	c.mu.Unlock()
	if d == nil || !c.ended(PartyPhone, reason) {
		return
	}
	c.event(true, sip.BYE, 0)
	ctx, cancel := context.WithTimeout(context.Background(), byeTimeout)
	defer cancel()
	// sipgo's Bye, not diago's Hangup: it waits for the ACK of our 200
	// where Hangup would answer 480 to a dialog not yet confirmed.
	if err := d.Bye(ctx); err != nil {
		c.log.Warn("sipphone.bye_failed", zap.Error(err))
	}
}

// why turns the context error of a step cut short into what cut it.
func (c *Call) why(err error) error {
	if !errors.Is(err, context.Canceled) {
		return err
	}
	c.mu.Lock()
	by := c.rec.HungUpBy
	c.mu.Unlock()
	switch {
	case by == PartyCaller:
		return ErrHungUp
	case by == PartyPhone:
		return nil // the phone ended the call itself (transfer, max call)
	case isClosed(c.phoneDone):
		return ErrPhoneClosed
	}
	return err
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (c *Call) addDigit(d Digit) int {
	var i int
	c.update(func(r *Record) {
		i = len(r.Digits)
		r.Digits = append(r.Digits, d)
	})
	c.log.Info("sipphone.dtmf", zap.Int("index", i)) // keys can be PINs: in the record only
	return i
}

func (c *Call) endDigit(i int, at time.Time, d time.Duration) {
	c.update(func(r *Record) { r.Digits[i].End, r.Digits[i].Duration = at, d })
}

// run plays one call after its INVITE passed authentication: ring, refuse
// or answer, run the script, stay until someone hangs up, tear down.
func (c *Call) run(phoneCtx context.Context, d *diago.DialogServerSession, s Script, maxCall time.Duration) {
	defer c.finish()
	ctx, cancel := context.WithCancel(phoneCtx)
	defer cancel()
	defer context.AfterFunc(d.Context(), cancel)()

	_ = c.respond(d, sip.StatusTrying, "Trying")
	if s.Ring != 0 {
		if c.respond(d, sip.StatusRinging, "Ringing") == nil {
			c.update(func(r *Record) { r.Rang = time.Now() })
		}
		if !c.ring(ctx, s.Ring) {
			c.notAnswered(d)
			return
		}
	}
	if s.Status != 0 {
		if c.respond(d, s.Status, reasonPhrase(s.Status)) == nil {
			c.update(func(r *Record) { r.Status = s.Status })
			c.ended(PartyPhone, "refused")
		}
		return
	}
	med, err := c.answer(ctx, d, s)
	if err != nil {
		c.err = err
		return
	}
	c.log.Info("sipphone.answered")

	err = c.runSteps(ctx, s)
	if rec := c.Record(); err == nil && ctx.Err() == nil && rec.HungUpBy == "" {
		// The steps are done: stay on the line, as a person does.
		c.stay(ctx, maxCall-time.Since(rec.Answered))
	}
	if isClosed(c.phoneDone) {
		c.hangUp("phone closed")
	}
	c.err = err
	// The dialog is over or hung up: stop the speaker and the listener
	// and let no transfer start, then wait for them.
	cancel()
	c.mu.Lock()
	c.dialog = nil
	c.mu.Unlock()
	_ = med.Close()
	c.wg.Wait()
}

// answer sends 200 with one G.711 law and telephone-event, waits for the
// ACK, and starts the listener and the speaker. A caller that does not
// offer the law is refused with 488.
func (c *Call) answer(ctx context.Context, d *diago.DialogServerSession, s Script) (*diago.DialogMedia, error) {
	want := s.Codec.orDefault()
	if !want.offeredIn(d.InviteRequest.Body()) {
		if c.respond(d, sip.StatusNotAcceptableHere, "Not Acceptable Here") == nil {
			c.update(func(r *Record) { r.Status = sip.StatusNotAcceptableHere })
			c.ended(PartyPhone, "no common codec")
		}
		return nil, fmt.Errorf("sipphone: the caller does not offer %s", want)
	}
	// The dialog is the call's from the 200 on: a REFER may overtake the
	// ACK that Answer waits for.
	c.mu.Lock()
	c.dialog, c.transfer = d, s.Transfer
	c.mu.Unlock()
	sentAt := time.Now()
	med, err := d.Answer(diago.AnswerOptions{Codecs: []media.Codec{want.media(), media.CodecTelephoneEvent8000}})
	if err != nil {
		c.mu.Lock()
		c.dialog = nil
		if res := d.InviteResponse; res != nil && res.StatusCode == sip.StatusOK {
			// Answered, but the dialog ended before the ACK was seen (a BYE
			// may overtake it).
			c.updateLocked(func(r *Record) {
				r.addEvent(Event{At: sentAt, Sent: true, Method: string(sip.INVITE), Status: sip.StatusOK})
				r.Status = sip.StatusOK
			})
		}
		c.mu.Unlock()
		if med != nil {
			_ = med.Close()
		}
		return nil, fmt.Errorf("sipphone: answer: %w", err)
	}
	sess := med.MediaSession()
	audio := media.CodecAudioFromSession(sess)
	l := &listener{codec: want, audioPT: audio.PayloadTypeRecv(), dtmfPT: -1, heard: c.heard, call: c}
	for _, cd := range sess.CommonCodecs() {
		if cd.Matches(media.CodecTelephoneEvent8000) {
			l.dtmfPT = int(cd.PayloadTypeRecv())
		}
	}
	now := time.Now()
	c.mu.Lock()
	c.updateLocked(func(r *Record) {
		r.addEvent(Event{At: sentAt, Sent: true, Method: string(sip.INVITE), Status: sip.StatusOK})
		r.addEvent(Event{At: now, Method: string(sip.ACK)})
		r.Status, r.Answered, r.Codec = sip.StatusOK, now, want
	})
	c.wg.Add(2)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		l.run(med.RTPPacketReader)
	}()
	go func() {
		defer c.wg.Done()
		c.mouth.run(ctx, med.RTPPacketWriter, want)
	}()
	return med, nil
}

// ring waits out the ring time; false if the call ended first.
func (c *Call) ring(ctx context.Context, d time.Duration) bool {
	if d == RingForever {
		<-ctx.Done()
		return false
	}
	return c.pause(ctx, d) == nil
}

// notAnswered settles a call that ended while ringing: the caller
// cancelled (the transaction layer answered 487), or the phone closed.
func (c *Call) notAnswered(d *diago.DialogServerSession) {
	if errors.Is(context.Cause(d.Context()), sip.ErrTransactionCanceled) {
		now := time.Now()
		c.update(func(r *Record) {
			r.addEvent(Event{At: now, Method: string(sip.CANCEL)})
			r.addEvent(Event{At: now, Sent: true, Method: string(sip.INVITE), Status: sip.StatusRequestTerminated})
			r.Status = sip.StatusRequestTerminated
		})
		c.ended(PartyCaller, "cancel")
		return
	}
	if isClosed(c.phoneDone) && c.respond(d, sip.StatusTemporarilyUnavailable, "Temporarily Unavailable") == nil {
		c.update(func(r *Record) { r.Status = sip.StatusTemporarilyUnavailable })
		c.ended(PartyPhone, "phone closed")
	}
}

// stay keeps the line open until the caller hangs up, the phone closes,
// or the call reaches its maximum length.
func (c *Call) stay(ctx context.Context, left time.Duration) {
	t := time.NewTimer(max(left, 0))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
		c.hangUp("max call")
	}
}

// finish closes the record and Done.
func (c *Call) finish() {
	c.update(func(r *Record) {
		r.Ended = time.Now()
		if r.EndReason == "" {
			r.EndReason = "ended"
		}
	})
	c.mouth.stop(time.Now())
	r := c.Record()
	c.log.Info("sipphone.call_ended", zap.Int("status", r.Status), zap.String("auth", string(r.Auth)),
		zap.String("hung_up_by", string(r.HungUpBy)), zap.String("reason", r.EndReason), zap.Int("digits", len(r.Digits)))
	close(c.done)
}

// reasonPhrase is the reason phrase a carrier sends with status.
func reasonPhrase(status int) string {
	switch status {
	case 100:
		return "Trying"
	case 200:
		return "OK"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 408:
		return "Request Timeout"
	case 480:
		return "Temporarily Unavailable"
	case 486:
		return "Busy Here"
	case 488:
		return "Not Acceptable Here"
	case 500:
		return "Server Internal Error"
	case 503:
		return "Service Unavailable"
	case 600:
		return "Busy Everywhere"
	case 603:
		return "Decline"
	}
	return "Rejected"
}
