package call

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docshield/voice-worker/internal/campaign"
	"github.com/docshield/voice-worker/internal/realtime"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/telephony"
	"go.uber.org/zap"
)

// What the agent is told to say at the edges of a call. Each is added to
// the session's instructions for one response only.
const (
	lineGreeting   = "Begin the call now. Greet the person by saying: %s"
	lineStillThere = "The line has been silent for a while. Ask briefly whether the person is still there."
	lineWrapUp     = "The call has reached its time limit. In one short sentence, apologise that you have to end the call now and say goodbye. Do not ask anything."
	lineShutdown   = "You must end the call right now. Say one short, polite goodbye sentence and nothing else."
	lineVoicemail  = "You reached voicemail. Leave this message now, word for word, then stop talking: %s"
	lineNoTransfer = "The transfer to a colleague failed. Apologise briefly and offer that someone will call back."
)

// tick paces the loop's bookkeeping: playout reports (the recording gets
// the agent's audio at most this late) and the timers' checks.
const tick = 20 * time.Millisecond

// maxFailedResponses in a row end the call: the model is not answering.
const maxFailedResponses = 2

// maxLatencies bounds the per-turn latencies kept for the call document.
const maxLatencies = 500

// conversationParts is what an answered call is made of.
type conversationParts struct {
	script   script
	sess     modelSession
	seat     phoneLeg
	player   voicePlayer
	leg      telephony.CallLeg
	media    *media
	answered time.Time
	silence  time.Duration // the model's VAD silence window
}

// conversation is one answered call. Its loop (run) owns every field;
// the media callbacks reach it only through media's channels.
type conversation struct {
	conversationParts
	a   *attempt
	t   Timers
	log *zap.Logger
	ctx context.Context // the task's: values and the shutdown signal

	out   *agentVoice
	turns *transcript

	// The model's responses.
	active    string   // response in progress ("" none)
	requested []string // the extra line of each response.create not yet answered by response.created
	lines     recent   // response id → the extra line we created it with
	failures  int      // failed responses in a row
	cut       recent   // items and responses cut short: their late audio is dropped
	tools     []pendingTool

	// The callee.
	speaking     bool
	lastActivity time.Time
	askedThere   bool
	stoppedAt    time.Time // the callee's last speech_stopped, until the reply's first audio
	stoppedResp  string    // the response active then, whose audio is not the reply

	latencies []int
	usage     store.Usage

	closing *closing
	// beepEnded is when the callee's line last had a beep end; held is a
	// voicemail message waiting for the beep (voicemail.go).
	beepEnded time.Time
	held      *heldForBeep
	// presence is the answer of the check, made off the loop, whether the
	// callee is still in the room after their audio stopped; nil: none
	// running.
	presence chan presenceAnswer
}

type presenceAnswer struct {
	present bool
	err     error
}

// presenceTimeout bounds asking LiveKit whether the callee is still there.
const presenceTimeout = 3 * time.Second

// PresenceRecheck is how long after LiveKit first says a silent callee is
// still in the room (or cannot say) the worker asks once more before it
// ends the call as media lost. A BYE can reach LiveKit late: SIP resends
// a lost one after 0.5, 1, 2 and 4 s, and a busy SIP service acts on it
// late. Such a callee hung up, and must not be called again as if the
// line had failed; a dead line costs the wait.
const PresenceRecheck = 5 * time.Second

// closing is a call on its way out: the last line plays, then the call
// ends as end (or runs then, which may resume the call).
type closing struct {
	end       ending
	deadline  time.Time
	drainedAt time.Time
	then      func() (ending, bool)
}

func (a *attempt) converse(ctx context.Context, p conversationParts) ending {
	cv := &conversation{
		conversationParts: p,
		a:                 a,
		t:                 a.r.o.Timers,
		log:               a.log,
		ctx:               ctx,
		lastActivity:      time.Now(),
		lines:             newRecent(8),
		cut:               newRecent(16),
	}
	cv.out = newAgentVoice(cv.player, p.sess)
	cv.turns = newTranscript(p.answered, p.silence, p.media.inputStart, a.keep.appendTurn)
	end := cv.run(ctx)
	end.at = time.Now() // over; place moves it to the hang-up if LiveKit takes it
	cv.record()
	return end
}

// run is the call's loop. It returns when the call is over; the caller
// hangs up.
func (cv *conversation) run(ctx context.Context) ending {
	cv.say(cv.greeting())
	maxDuration := time.NewTimer(cv.t.MaxDuration)
	defer maxDuration.Stop()
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	shutdown := ctx.Done()
	for {
		select {
		case ev, ok := <-cv.sess.Events():
			if !ok {
				return cv.modelGone()
			}
			if end, over := cv.onEvent(ev); over {
				return end
			}
		case ev := <-cv.media.playback:
			cv.onPlayback(ev)
		case <-cv.media.barge:
			cv.bargeIn(causeCalleeLocal)
		case at := <-cv.media.beeps:
			cv.onBeep(at)
		case <-ticker.C:
			if end, over := cv.onTick(time.Now()); over {
				return end
			}
		case <-maxDuration.C:
			cv.endPolitely(ending{status: store.CallCompleted, reason: "maximum call duration reached"},
				causeMaxDuration, lineWrapUp, cv.t.Goodbye)
		case <-shutdown:
			shutdown = nil
			cv.onShutdown()
		case <-cv.seat.PeerLeft():
			end, _ := cv.endNow(ending{status: store.CallCompleted, reason: "callee hung up"})
			return end
		case <-cv.seat.Disconnected():
			end, _ := cv.endNow(failed(fmt.Sprintf("the agent lost its seat in the room (%s)", cv.seat.DisconnectReason())))
			return end
		case ans := <-cv.presence:
			cv.presence = nil
			if end, over := cv.onPresence(ans); over {
				return end
			}
		case <-cv.a.keep.Lost():
			return ending{fenceLost: true}
		}
	}
}

func (cv *conversation) greeting() string {
	if cv.script.greeting == "" {
		return ""
	}
	return fmt.Sprintf(lineGreeting, cv.script.greeting)
}

// say asks the model for a response; extra, if any, is added to the
// session's instructions for that response only (response instructions
// replace the session's, so they carry both).
func (cv *conversation) say(extra string) {
	instructions := ""
	if extra != "" {
		instructions = cv.script.instructions + "\n\n" + extra
	}
	if err := cv.sess.CreateResponse(instructions); err != nil {
		cv.log.Warn("call.response_not_requested", zap.Error(err))
		return
	}
	cv.requested = append(cv.requested, extra)
}

func (cv *conversation) onEvent(ev realtime.Event) (ending, bool) {
	now := time.Now()
	switch e := ev.(type) {
	case realtime.AudioDelta:
		cv.onAudio(e, now)
	case realtime.SpeechStarted:
		cv.speaking, cv.askedThere, cv.lastActivity = true, false, now
		cv.stoppedAt = time.Time{}
		cv.turns.speechStarted(e.ItemID, e.AudioStartMS)
		cv.bargeIn(causeCallee)
	case realtime.SpeechStopped:
		cv.speaking, cv.lastActivity = false, now
		cv.stoppedAt, cv.stoppedResp = now, cv.active
		cv.turns.speechStopped(e.ItemID, e.AudioEndMS)
	case realtime.InputTranscript:
		cv.turns.calleeText(e.ItemID, e.Transcript)
	case realtime.ResponseCreated:
		cv.active = e.Response.ID
		if len(cv.requested) > 0 {
			cv.lines.put(e.Response.ID, cv.requested[0])
			cv.requested = cv.requested[1:]
		}
	case realtime.ResponseDone:
		return cv.onResponseDone(e.Response)
	case realtime.TranscriptDelta:
		cv.turns.agentDelta(e.ItemID, e.Delta)
	case realtime.TranscriptDone:
		cv.turns.agentText(e.ItemID, e.Transcript)
	case realtime.AudioDone:
		cv.turns.agentAudioDone(e.ItemID)
	case realtime.FunctionCall:
		cv.onToolCall(e, now)
	case realtime.ErrorEvent:
		cv.onModelError(e.Err)
	}
	return ending{}, false
}

func (cv *conversation) onAudio(e realtime.AudioDelta, now time.Time) {
	if cv.cut.has(e.ItemID) || cv.cut.has(e.ResponseID) {
		return // audio of a reply the callee interrupted
	}
	if err := cv.out.write(e.ItemID, e.PCM); err != nil {
		cv.log.Warn("call.agent_audio_dropped", zap.Error(err))
		return
	}
	cv.media.agentTalking.Store(true)
	cv.turns.agentAudio(e.ItemID, e.ResponseID)
	if !cv.stoppedAt.IsZero() && e.ResponseID != cv.stoppedResp {
		if len(cv.latencies) < maxLatencies {
			cv.latencies = append(cv.latencies, int(now.Sub(cv.stoppedAt).Milliseconds()))
		}
		cv.stoppedAt = time.Time{}
	}
}

func (cv *conversation) onResponseDone(r realtime.Response) (ending, bool) {
	if r.ID == cv.active {
		cv.active = ""
	}
	if u := r.Usage; u != nil {
		cv.usage.InputTokens += u.InputTokens
		cv.usage.OutputTokens += u.OutputTokens
		cv.usage.InputAudioTokens += u.InputTokenDetails.AudioTokens
		cv.usage.OutputAudioTokens += u.OutputTokenDetails.AudioTokens
	}
	cv.turns.responseDone(r.ID)
	switch r.Status {
	case "failed":
		cv.failures++
		err := r.Err()
		cv.log.Warn("call.response_failed", zap.Int("in_a_row", cv.failures), zap.Error(err))
		if cv.failures >= maxFailedResponses {
			return cv.endNow(failed(fmt.Sprintf("the model failed %d responses in a row: %v", cv.failures, err)))
		}
		extra, _ := cv.lines.get(r.ID) // "" for a reply the model started itself
		cv.say(extra)
		cv.dropTools(r.ID)
		return ending{}, false
	case "completed":
		cv.failures = 0
	}
	return cv.actOnTools(r.ID)
}

func (cv *conversation) onModelError(err error) {
	var api *realtime.APIError
	switch {
	case errors.As(err, &api) && api.Code == "conversation_already_has_active_response":
		// One of our response.create calls was refused: the model was
		// already answering (the callee spoke a moment before).
		if len(cv.requested) > 0 {
			cv.requested = cv.requested[1:]
		}
		cv.log.Info("call.response_refused_model_busy")
	case errors.Is(err, realtime.ErrInvalidRequest):
		// Benign races: a cancel after the response ended, a truncate of
		// an item that finished.
		cv.log.Debug("call.model_refused_event", zap.Error(err))
	default:
		// Rate limits and server errors leave the session running; a
		// failed response is handled at response.done, a dead socket when
		// the events end.
		cv.log.Warn("call.model_error", zap.Error(err))
	}
}

func (cv *conversation) onPlayback(ev telephony.PlaybackEvent) {
	switch ev.Kind {
	case telephony.PlaybackStarted:
		cv.turns.playStarted(ev.Item, ev.At)
	case telephony.PlaybackDrained:
		cv.out.sync()
		cv.turns.drained(ev.Item, ev.At)
	}
}

func (cv *conversation) onTick(now time.Time) (ending, bool) {
	cv.out.sync()
	talking := cv.player.Queued() > 0
	cv.media.agentTalking.Store(talking)
	if end, lost := cv.mediaLost(now); lost {
		// Not even a polite ending stands: nobody heard it.
		return end, true
	}
	if cv.closing != nil {
		cv.heldTick(now)
		return cv.closingTick(now)
	}
	if talking || cv.speaking || cv.active != "" || len(cv.requested) > 0 {
		cv.lastActivity = now
		return ending{}, false
	}
	if now.Sub(cv.lastActivity) < cv.t.Silence {
		return ending{}, false
	}
	if cv.askedThere {
		return cv.endNow(ending{status: store.CallCompleted, reason: "silence: nobody answered whether they were still there"})
	}
	cv.askedThere, cv.lastActivity = true, now
	cv.say(lineStillThere)
	return ending{}, false
}

// OutcomeMediaLost is the outcome of a call that ended because its media
// was gone: our failure, not the callee's, which the campaign's retry
// policy treats as such.
const OutcomeMediaLost = string(campaign.OutcomeMediaLost)

// mediaLost reports a call whose media is gone: the connection to LiveKit
// down (the SDK would retry it for minutes) or no audio from the callee
// for Timers.MediaLoss. Such a call is not talking to anyone, so it must
// not run on, nor end as completed with a recording of nothing.
func (cv *conversation) mediaLost(now time.Time) (ending, bool) {
	if since := cv.seat.ReconnectingSince(); !since.IsZero() && now.Sub(since) >= cv.t.MediaLoss {
		return mediaLostEnding(fmt.Sprintf("the connection to LiveKit has been down for %s", now.Sub(since).Round(time.Second))), true
	}
	if cv.calleeSilentFor(now) >= cv.t.MediaLoss && cv.presence == nil {
		// Silence on a phone line means the callee is gone: hung up
		// (LiveKit may not have told us) or cut off. Ask the server which,
		// off the loop; onPresence decides.
		cv.presence = make(chan presenceAnswer, 1)
		go cv.checkPresence(cv.presence)
	}
	return ending{}, false
}

// calleeSilentFor is how long no audio of the callee's arrived (since the
// answer, if none did).
func (cv *conversation) calleeSilentFor(now time.Time) time.Duration {
	last := cv.media.lastCalleeAudio()
	if last.Before(cv.answered) {
		last = cv.answered
	}
	return now.Sub(last)
}

// checkPresence asks LiveKit whether the callee is in the room and, unless
// they are gone, once more after PresenceRecheck (or when the call ends).
func (cv *conversation) checkPresence(out chan<- presenceAnswer) {
	ans := cv.askPresence()
	if ans.err != nil || ans.present {
		wait := time.NewTimer(PresenceRecheck)
		defer wait.Stop()
		select {
		case <-wait.C:
			ans = cv.askPresence()
		case <-cv.ctx.Done():
		}
	}
	out <- ans
}

func (cv *conversation) askPresence() presenceAnswer {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(cv.ctx), presenceTimeout)
	defer cancel()
	present, err := cv.a.r.o.Rooms.HasParticipant(ctx, cv.leg.Room, cv.leg.Identity)
	return presenceAnswer{present, err}
}

// onPresence ends a call whose callee's audio stopped: "callee hung up"
// when LiveKit says they left, media lost when they are still there (or
// LiveKit cannot say), since then nothing of theirs reaches us.
func (cv *conversation) onPresence(ans presenceAnswer) (ending, bool) {
	silent := cv.calleeSilentFor(time.Now())
	if silent < cv.t.MediaLoss {
		return ending{}, false // their audio came back meanwhile
	}
	if ans.err == nil && !ans.present {
		return cv.endNow(ending{status: store.CallCompleted, reason: "callee hung up"})
	}
	why := fmt.Sprintf("no audio from the callee for %s", silent.Round(time.Second))
	if ans.err != nil {
		why += " and LiveKit could not say whether they are there: " + ans.err.Error()
	} else {
		why += " while they are still in the room"
	}
	return mediaLostEnding(why), true
}

func mediaLostEnding(why string) ending {
	e := failed("media lost: " + why)
	e.outcome = OutcomeMediaLost
	return e
}

// Causes of an interruption of the agent's voice (store.Interruption).
const (
	causeCallee      = "callee"
	causeCalleeLocal = "callee_local"
	causeMaxDuration = "max_duration"
	causeShutdown    = "shutdown"
)

// bargeIn: the callee started talking. If the agent is talking, its queued
// audio goes at once and the model learns where the callee stopped
// hearing it. Once the call is ending, the last line is not interruptible.
func (cv *conversation) bargeIn(cause string) {
	if cv.closing != nil || (cv.player.Queued() == 0 && cv.active == "") {
		return
	}
	// The model's own detection cancels its response itself
	// (interrupt_response); ours is ahead of it, so we cancel.
	cv.cutAgent(cause, cause == causeCalleeLocal)
}

// cutAgent silences the agent now: the Player's queue is cleared, the
// played part is reported, and the model's item is truncated there.
func (cv *conversation) cutAgent(cause string, cancelResponse bool) {
	now := time.Now()
	in := cv.player.Clear()
	cv.media.agentTalking.Store(false)
	cv.out.cut(in)
	if cancelResponse && cv.active != "" {
		_ = cv.sess.CancelResponse() // refused harmlessly if it just ended
		cv.cut.put(cv.active, "")
	}
	ri, err := cv.sess.Interrupt(in.Item)
	if err != nil {
		cv.log.Warn("call.truncate_failed", zap.Error(err))
	}
	if ri.ItemID == "" && in.Dropped == 0 {
		return // nothing unheard was cut
	}
	item := ri.ItemID
	if item == "" {
		item = in.Item
	}
	cv.cut.put(item, "")
	if r := cv.sess.AssistantAudio(item).ResponseID; r != "" {
		cv.cut.put(r, "")
	}
	cv.turns.cut(item, now)
	if len(cv.a.details.Interruptions) < maxInterruptions {
		cv.a.details.Interruptions = append(cv.a.details.Interruptions, store.Interruption{
			Cause: cause, AtMS: now.Sub(cv.answered).Milliseconds(), ItemID: item,
			PlayedMS: ri.PlayedMS, DroppedMS: int(in.Dropped.Milliseconds()),
		})
	}
	cv.log.Debug("call.agent_cut", zap.String("cause", cause), zap.Int("played_ms", ri.PlayedMS),
		zap.Duration("dropped", in.Dropped))
}

// maxInterruptions bounds the list on the call document.
const maxInterruptions = 100

// endPolitely cuts the agent short, has it say line, and ends the call as
// end once that was heard (or after limit).
func (cv *conversation) endPolitely(end ending, cause, line string, limit time.Duration) {
	if cv.closing != nil {
		return // already on the way out
	}
	cv.cutAgent(cause, true)
	cv.say(line)
	cv.startClosing(end, limit, nil)
}

// onShutdown: the worker is stopping. A short goodbye, then the call ends
// as interrupted; a call already ending ends sooner.
func (cv *conversation) onShutdown() {
	if c := cv.closing; c != nil {
		if d := time.Now().Add(cv.t.ShutdownLine); d.Before(c.deadline) {
			c.deadline = d
		}
		return
	}
	cv.endPolitely(ending{status: store.CallInterrupted, reason: "the worker shut down during the call"},
		causeShutdown, lineShutdown, cv.t.ShutdownLine)
}

// startClosing: from now on the model no longer hears the callee, so the
// last line is said in full; the call ends when it has been heard.
func (cv *conversation) startClosing(end ending, limit time.Duration, then func() (ending, bool)) {
	cv.closing = &closing{end: end, deadline: time.Now().Add(limit), then: then}
	cv.media.muted.Store(true)
}

func (cv *conversation) closingTick(now time.Time) (ending, bool) {
	c := cv.closing
	idle := len(cv.requested) == 0 && cv.active == "" && cv.player.Queued() == 0
	switch {
	case idle && c.drainedAt.IsZero():
		c.drainedAt = now
	case !idle:
		c.drainedAt = time.Time{}
	}
	heard := idle && now.Sub(c.drainedAt) >= cv.t.Tail
	if !heard && now.Before(c.deadline) {
		return ending{}, false
	}
	if !heard {
		cv.log.Info("call.last_line_cut_at_deadline", zap.String("reason", c.end.reason))
	}
	if c.then == nil {
		return c.end, true
	}
	if end, over := c.then(); over {
		return end, true
	}
	cv.closing = nil
	cv.media.muted.Store(false)
	return ending{}, false
}

// endNow ends the call at once. A call that was already ending politely
// keeps its ending: the callee hanging up after the goodbye is still the
// goodbye's ending.
func (cv *conversation) endNow(end ending) (ending, bool) {
	if c := cv.closing; c != nil && c.then == nil {
		return c.end, true
	}
	return end, true
}

// modelGone: the session ended under us (socket dropped, session expired).
func (cv *conversation) modelGone() ending {
	err := cv.sess.Err()
	if err == nil {
		err = realtime.ErrClosed
	}
	end, _ := cv.endNow(failed("the model session ended: " + err.Error()))
	return end
}

// record puts what the conversation measured on the attempt, once the
// loop is over.
func (cv *conversation) record() {
	cv.out.sync()
	cv.turns.flush(time.Now())
	cv.usage.CalleeAudioMS = int64(realtime.SamplesToMS(int(cv.sess.Stats().InputSamples)))
	cv.usage.AgentAudioMS = samplesDuration(cv.out.played).Milliseconds()
	cv.a.fields.LatenciesMS = cv.latencies
	cv.a.fields.Usage = &cv.usage
}

// recent is a small bounded set of ids with a value each, oldest evicted.
type recent struct {
	keys []string
	vals []string
	max  int
}

func newRecent(n int) recent { return recent{max: n} }

func (r *recent) put(k, v string) {
	if k == "" {
		return
	}
	for i, key := range r.keys {
		if key == k {
			r.vals[i] = v
			return
		}
	}
	if len(r.keys) == r.max {
		r.keys, r.vals = r.keys[1:], r.vals[1:]
	}
	r.keys, r.vals = append(r.keys, k), append(r.vals, v)
}

func (r *recent) get(k string) (string, bool) {
	for i, key := range r.keys {
		if key == k {
			return r.vals[i], true
		}
	}
	return "", false
}

func (r *recent) has(k string) bool { _, ok := r.get(k); return ok }
