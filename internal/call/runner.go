package call

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docshield/voice-worker/internal/agent"
	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/metrics"
	"github.com/docshield/voice-worker/internal/monitor"
	"github.com/docshield/voice-worker/internal/phone"
	"github.com/docshield/voice-worker/internal/realtime"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"go.uber.org/zap"
)

// Timers bound a call. Zero fields take the defaults below.
type Timers struct {
	// MaxDuration: the agent wraps up politely, then hangs up.
	MaxDuration time.Duration
	// Silence: nobody spoke for this long; the agent asks once whether the
	// person is still there, and hangs up after a second silence.
	Silence time.Duration
	// RingTimeout overrides the telephony setting for the dial.
	RingTimeout time.Duration
	// Goodbye bounds how long a closing line (after end_call, opt_out, the
	// maximum duration) may take to be said and heard.
	Goodbye time.Duration
	// Voicemail bounds leaving the voicemail message.
	Voicemail time.Duration
	// ShutdownLine bounds the polite line when the worker shuts down; it
	// must leave room in the shutdown budget for the hang-up and the writes.
	ShutdownLine time.Duration
	// Tail is how long the line stays up after the last agent audio was
	// sent, so that it reaches the callee before the hang-up.
	Tail time.Duration
	// MediaLoss is how long the call goes on without its media: the
	// connection to LiveKit down, or no audio from the callee (a phone
	// leg sends audio all the time, silence included). Past it the call
	// ends as failed with outcome media_lost.
	MediaLoss time.Duration
}

// Timer defaults.
const (
	DefaultMaxDuration  = 10 * time.Minute // well inside the model session's 60-minute limit
	DefaultSilence      = 15 * time.Second
	DefaultGoodbye      = 15 * time.Second
	DefaultVoicemail    = 45 * time.Second
	DefaultShutdownLine = 2 * time.Second
	DefaultTail         = 300 * time.Millisecond
	DefaultMediaLoss    = 5 * time.Second
)

func (t Timers) withDefaults() Timers {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&t.MaxDuration, DefaultMaxDuration)
	def(&t.Silence, DefaultSilence)
	def(&t.Goodbye, DefaultGoodbye)
	def(&t.Voicemail, DefaultVoicemail)
	def(&t.ShutdownLine, DefaultShutdownLine)
	def(&t.Tail, DefaultTail)
	def(&t.MediaLoss, DefaultMediaLoss)
	return t
}

// Options configure a Runner. Store, Rooms, Dialer, Telephony and Realtime
// are required.
type Options struct {
	Store     CallStore
	Rooms     RoomService
	Dialer    telephony.Dialer
	Telephony telephony.Config
	// Realtime holds the connection settings (OPENAI_*), the default voice
	// and the turn detection; each call sets its own instructions, tools
	// and voice.
	Realtime realtime.Config

	// Prompts finds each attempt's prompt; nil serves inline calls only.
	Prompts PromptSource
	// DialCheck is asked before the calling hours and the do-not-call
	// list are checked (is the campaign still running, is it within its
	// hours; the fleet's dial slot is waited for here). A refusal cancels
	// the attempt with that reason; an error (could not check) fails it.
	// Nil: no further check.
	DialCheck func(ctx context.Context, c *store.Call) (refusal string, err error)
	// Analyze receives call:analyze when a call has ended; nil skips it.
	Analyze Enqueuer
	// Ends keeps the end of a call that MongoDB did not take in time, for
	// the reaper to write later; nil: such an end is only logged.
	Ends EndOutbox
	// Recordings starts each answered call's recording; nil records nothing.
	Recordings RecorderFactory
	// Audio counts each call's audio deadlines for admission (the model
	// input dropped while its socket fell behind); nil counts nothing.
	Audio *monitor.AudioMeter

	Timers   Timers
	LocalVAD LocalVAD
	// Logger is used when the task's context carries none.
	Logger *zap.Logger
}

// Runner places and conducts calls; one Run is one call. It is safe for
// concurrent use.
type Runner struct {
	o Options
}

var _ AttemptRunner = (*Runner)(nil)

// NewRunner checks the options and fills defaults.
func NewRunner(o Options) (*Runner, error) {
	var errs []error
	if o.Store == nil {
		errs = append(errs, errors.New("call: Options.Store is required"))
	}
	if o.Rooms == nil {
		errs = append(errs, errors.New("call: Options.Rooms is required"))
	}
	if o.Dialer == nil {
		errs = append(errs, errors.New("call: Options.Dialer is required"))
	}
	if err := o.Telephony.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("call: Options.Telephony: %w", err))
	}
	if r := o.Telephony.SampleRate; r != 0 && r != realtime.SampleRate {
		errs = append(errs, fmt.Errorf("call: Options.Telephony.SampleRate must be %d, the model's rate", realtime.SampleRate))
	}
	if o.Realtime.APIKey == "" {
		errs = append(errs, errors.New("call: Options.Realtime.APIKey (OPENAI_API_KEY) is required"))
	}
	if err := o.LocalVAD.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.Prompts == nil {
		o.Prompts = InlinePrompts
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	o.Timers = o.Timers.withDefaults()
	return &Runner{o: o}, nil
}

// Run conducts one claimed attempt from the do-not-call check to wrap-up
// and always returns nil: whatever happened is recorded on the attempt,
// and a call that may have rung a phone is never retried by asynq.
func (r *Runner) Run(ctx context.Context, claim store.Claim, c *store.Call) error {
	// Whatever the SDKs tie to ctx (LiveKit forwards a request context's
	// cancellation with a goroutine) ends with the call, not with the
	// caller's context.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a := r.start(ctx, claim, c)
	defer a.keep.close() // finish closes it first; this covers a panic
	a.finish(ctx, a.place(ctx))
	return nil
}

// attempt is one Run. Its fields are written by the goroutine running Run
// only; the keeper and the media callbacks have their own.
type attempt struct {
	r     *Runner
	claim store.Claim
	doc   *store.Call
	log   *zap.Logger
	keep  *keeper

	// Recorded with the terminal status.
	fields  store.CallFields
	details store.CallDetails
}

func (r *Runner) start(ctx context.Context, claim store.Claim, c *store.Call) *attempt {
	log := logging.FromContext(ctx)
	if !log.Core().Enabled(zap.FatalLevel) { // no task logger: a bare Run
		log = r.o.Logger.With(zap.String("attempt_id", claim.AttemptID))
	}
	a := &attempt{
		r: r, claim: claim, doc: c, log: log,
		keep: newKeeper(r.o.Store, claim, log),
	}
	a.keep.start()
	return a
}

// place runs the call up to its end and returns how it ended. The defers
// tear down in the right order: hang up, close the recording, close the
// model session, leave the room, delete the room.
func (a *attempt) place(ctx context.Context) (end ending) {
	s, end, ok := a.prepare(ctx)
	if !ok {
		return end
	}
	o := a.r.o
	room, err := o.Rooms.Create(ctx, a.claim.AttemptID)
	if err != nil {
		return notDialed(ctx, "create the call's room", err)
	}
	a.fields.Room = room
	defer a.deleteRoom(ctx, room) // idempotent after Hangup; covers unanswered dials

	m := newMedia(o.LocalVAD)
	seat, err := telephony.Join(ctx, o.Telephony, room, telephony.ParticipantOptions{
		Identity:     telephony.AgentIdentity,
		Name:         "DocShield agent",
		Attributes:   map[string]string{telephony.AttemptAttribute: a.claim.AttemptID},
		OnPeerAudio:  m.calleeAudio, // the callee's, once the dial names them (SetPeer)
		OnPeerPacket: m.calleePacket,
		Player:       telephony.PlayerOptions{OnPlayback: m.onPlayback, OnSent: m.agentPacket},
		Logger:       a.log,
	})
	if err != nil {
		return notDialed(ctx, "take the agent's seat in the room", err)
	}
	defer seat.Close()

	// The session outlives ctx: on shutdown the agent still says a short
	// goodbye. Close ends it on every path.
	rc := a.sessionConfig(s)
	sess, err := realtime.Dial(context.WithoutCancel(ctx), rc)
	if err != nil {
		return notDialed(ctx, "connect to the model", err)
	}
	defer sess.Close()
	if o.Audio != nil {
		defer o.Audio.Track(func() monitor.AudioCounts {
			st := sess.Stats()
			frames, late := seat.Player().Counts()
			return monitor.AudioCounts{Frames: frames, LateFrames: late, InputChunks: st.InputChunks, InputDropped: st.InputChunksDropped}
		})()
	}
	m.setSession(sess)
	defer func() { a.closeRecording(ctx, m) }() // after the hang-up below

	if end, ok := a.checkBeforeDial(ctx, s.Phone); !ok {
		return end
	}
	if a.keep.isLost() {
		return ending{fenceLost: true}
	}
	// The status steps go through the keeper: no write stands between the
	// checks and the dial, or between the answer and the greeting.
	a.keep.transition(store.CallRinging, store.CallFields{Room: room})
	leg, err := o.Dialer.Dial(ctx, telephony.DialRequest{
		AttemptID: a.claim.AttemptID, Room: room, To: s.Phone, CallerID: s.CallerID, RingTimeout: o.Timers.RingTimeout,
	})
	if err != nil {
		return dialEnded(ctx, err)
	}
	defer func() {
		// The call ended when the line was hung up; if LiveKit could not
		// be told (it is gone), when the conversation ended.
		if a.hangup(ctx, leg) && !end.at.IsZero() {
			end.at = time.Now()
		}
	}()
	answered := time.Now()
	if err := seat.SetPeer(leg.Identity); err != nil {
		return failed("answered, but the callee cannot be heard: " + err.Error())
	}
	a.fields.SIPCallID = leg.SIPCallID
	a.keep.transition(store.CallInProgress, store.CallFields{SIPCallID: leg.SIPCallID})
	a.log.Info("call.answered", zap.String("room", room))
	a.startRecording(ctx, m, answered)
	return a.converse(ctx, conversationParts{
		script: s, sess: sess, seat: seat, player: seat.Player(), leg: leg, media: m, answered: answered,
		silence: time.Duration(rc.VAD.SilenceDurationMS) * time.Millisecond,
	})
}

// prepare finds and renders the prompt. Nothing has been dialed if it
// fails.
func (a *attempt) prepare(ctx context.Context) (script, ending, bool) {
	p, err := a.r.o.Prompts(ctx, a.doc)
	if err != nil {
		return script{}, notDialed(ctx, "find the prompt", err), false
	}
	if !phone.Valid(p.Phone) {
		return script{}, failed("not dialed: the phone number is not E.164"), false
	}
	s, err := render(p)
	if err != nil {
		return script{}, failed("not dialed: prompt: " + err.Error()), false
	}
	if s.tools, err = agent.Tools(p.Tools); err != nil {
		return script{}, failed("not dialed: prompt: " + err.Error()), false
	}
	return s, ending{}, true
}

// checkBeforeDial is the last look before the phone rings: the number may
// have gone on the do-not-call list (or the campaign stopped) since the
// attempt was queued.
func (a *attempt) checkBeforeDial(ctx context.Context, phone string) (ending, bool) {
	if ctx.Err() != nil {
		return cancelled("not dialed: the worker is shutting down"), false
	}
	// DialCheck first: it may wait for the trunk's dial slot (up to
	// DIAL_RATE_MAX_WAIT). The legal checks come after any wait, so the
	// calling hours and the do-not-call list are read right before the
	// phone rings, never half a minute earlier.
	if a.r.o.DialCheck != nil {
		refusal, err := a.r.o.DialCheck(ctx, a.doc)
		if err != nil {
			return notDialed(ctx, "check whether to dial", err), false
		}
		if refusal != "" {
			return cancelled("not dialed: " + refusal), false
		}
	}
	if refusal := legalHoursRefusal(phone, a.doc.TimeZone, time.Now()); refusal != "" {
		return cancelled("not dialed: " + refusal), false
	}
	listed, err := a.r.o.Store.IsDoNotCall(ctx, phone)
	if err != nil {
		return notDialed(ctx, "check the do-not-call list", err), false
	}
	if listed {
		return cancelled("not dialed: the number is on the do-not-call list"), false
	}
	return ending{}, true
}

func (a *attempt) sessionConfig(s script) realtime.Config {
	rc := a.r.o.Realtime
	rc.Instructions = s.instructions
	rc.Tools = s.tools
	if s.Voice != "" {
		rc.Voice = s.Voice
	}
	rc.Logger = a.log
	if rc.VAD.SilenceDurationMS == 0 {
		rc.VAD.SilenceDurationMS = 500 // the API's default, made explicit for transcript offsets
	}
	return rc
}

// hangup ends the call's SIP leg; it reports whether LiveKit took it.
func (a *attempt) hangup(ctx context.Context, leg telephony.CallLeg) bool {
	if err := a.r.o.Rooms.Hangup(ctx, leg); err != nil {
		a.log.Warn("call.hangup_failed", zap.Error(err))
		return false
	}
	return true
}

func (a *attempt) deleteRoom(ctx context.Context, room string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), telephony.HangupTimeout)
	defer cancel()
	if err := a.r.o.Rooms.Delete(dctx, room); err != nil {
		a.log.Warn("call.delete_room_failed", zap.Error(err))
	}
}

func (a *attempt) startRecording(ctx context.Context, m *media, answered time.Time) {
	if a.r.o.Recordings == nil {
		return
	}
	rec, err := a.r.o.Recordings(ctx, a.claim, a.doc, answered)
	if err != nil {
		a.log.Warn("call.recording_not_started", zap.Error(err))
		a.details.RecordingError = "recording not started: " + err.Error()
		return
	}
	m.setRecorder(rec)
}

func (a *attempt) closeRecording(ctx context.Context, m *media) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordingCloseTimeout)
	defer cancel()
	rec, err := m.closeRecorder(rctx)
	if err != nil {
		a.log.Warn("call.recording_failed", zap.Error(err))
		a.details.RecordingError = err.Error()
	}
	a.fields.Recording = rec
}

// Bounds on the writes and teardown after a call, all on fresh contexts:
// they matter most when the task's context is gone.
const (
	writeTimeout = 10 * time.Second
	// recordingCloseTimeout bounds closing a call's recording at hang-up,
	// so a call ending at SIGTERM still fits in the shutdown budget; what
	// storage has not taken by then stays with the spool, and the call
	// document says pending_upload.
	recordingCloseTimeout = 10 * time.Second
	endWriteAttempts      = 3
)

// finish writes the one terminal status and enqueues the analysis.
func (a *attempt) finish(ctx context.Context, end ending) {
	a.keep.close() // transcript turns first: they are refused once the call has ended
	if end.fenceLost || a.keep.isLost() {
		a.log.Warn("call.claim_lost_mid_call", zap.String("would_have_ended_as", string(end.status)))
		return
	}
	f := a.fields
	f.Outcome = end.outcome
	if end.status == store.CallFailed || end.status == store.CallInterrupted || end.status == store.CallCancelled {
		f.Error = end.reason
	}
	d := a.details
	d.EndReason = end.reason
	at := end.at
	if at.IsZero() {
		at = time.Now()
	}
	rec := store.EndRecord{Status: end.status, At: at, Fields: f, Details: d}
	var err error
	for i := range endWriteAttempts {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
		err = a.r.o.Store.EndCall(wctx, a.claim, rec)
		cancel()
		if err == nil || errors.Is(err, store.ErrFenceMismatch) || errors.Is(err, store.ErrInvalidTransition) {
			break
		}
		a.log.Warn("call.end_write_failed", zap.Int("try", i+1), zap.Error(err))
	}
	fields := []zap.Field{zap.String("status", string(end.status)), zap.String("reason", end.reason), zap.String("outcome", f.Outcome)}
	switch {
	case err == nil:
		a.log.Info("call.ended", fields...)
		metrics.CallEnded(string(end.status), f.Outcome)
		enqueueAnalysis(ctx, a.r.o.Analyze, a.claim.AttemptID, a.log)
	case errors.Is(err, store.ErrFenceMismatch) || errors.Is(err, store.ErrInvalidTransition):
		a.log.Warn("call.claim_lost_at_end", append(fields, zap.Error(err))...)
	default:
		a.putAside(ctx, rec, fields, err)
	}
}

// putAside hands an end MongoDB did not take to the outbox, which the
// reaper empties into MongoDB once it is back (past this task's deadline,
// and after a restart); the call is never left to be settled as
// interrupted because the machine was slow for a minute.
func (a *attempt) putAside(ctx context.Context, rec store.EndRecord, fields []zap.Field, cause error) {
	if a.r.o.Ends == nil {
		a.log.Error("call.end_not_recorded", append(fields, zap.Error(cause))...)
		return
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if err := a.r.o.Ends.Put(pctx, PendingEnd{Claim: a.claim, End: rec}); err != nil {
		a.log.Error("call.end_not_recorded", append(fields, zap.Error(cause), zap.NamedError("outbox_error", err))...)
		return
	}
	a.log.Warn("call.end_pending", append(fields, zap.Error(cause))...)
}

// enqueueAnalysis asks for the analysis of an ended call; the task id
// makes a second request while the first waits a no-op.
func enqueueAnalysis(ctx context.Context, q Enqueuer, attemptID string, log *zap.Logger) {
	if q == nil {
		return
	}
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	_, err := q.Enqueue(ectx, tasks.CallAnalyze{AttemptID: attemptID}, asynq.TaskID("analyze-"+attemptID))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		// The campaign's repair round settles a contact whose attempt
		// ended without its analysis.
		log.Error("call.analyze_not_enqueued", zap.String("attempt_id", attemptID), zap.Error(err))
	}
}

// ending is how a call ended: one terminal status and its reason.
type ending struct {
	status  store.CallStatus
	reason  string
	outcome string // for the campaign: opted_out, transferred; "" otherwise
	// fenceLost: the attempt is no longer ours (reaped); nothing more is
	// written to it.
	fenceLost bool
	// at is when the call ended (ended_at): the hang-up, or the end of the
	// conversation when LiveKit could not take the hang-up; zero: when the
	// end is written (the call never got that far).
	at time.Time
}

func failed(reason string) ending    { return ending{status: store.CallFailed, reason: reason} }
func cancelled(reason string) ending { return ending{status: store.CallCancelled, reason: reason} }

// notDialed ends an attempt that failed before the phone rang: cancelled
// if the worker is shutting down, failed otherwise.
func notDialed(ctx context.Context, what string, err error) ending {
	if ctx.Err() != nil {
		return cancelled("not dialed: the worker is shutting down")
	}
	return failed(fmt.Sprintf("not dialed: could not %s: %v", what, err))
}

// dialEnded maps an unanswered dial to its terminal status.
func dialEnded(ctx context.Context, err error) ending {
	if ctx.Err() != nil {
		return ending{status: store.CallInterrupted, reason: "the worker shut down while the phone rang"}
	}
	switch telephony.OutcomeOf(err) {
	case telephony.Busy:
		return ending{status: store.CallBusy, reason: "busy: " + err.Error()}
	case telephony.NoAnswer:
		return ending{status: store.CallNoAnswer, reason: "no answer: " + err.Error()}
	case telephony.Rejected:
		return failed("rejected: " + err.Error())
	}
	return failed("dial failed: " + err.Error())
}
