package call

import (
	"time"

	"go.uber.org/zap"
)

// A voicemail message is said after the machine's beep, not over its
// greeting: once the model recognises the machine, the agent stops
// talking, the message is asked for at once and its audio held in the
// player (telephony.Player.Hold), and released the moment the beep ends,
// so the message starts a network hop after the beep, however long the
// model takes to speak. Machines without a beep start recording when
// their greeting ends: a quiet line after it releases the message too,
// and so does a deadline.

// Voicemail timing.
const (
	// beepWait bounds the wait for the beep after the machine was
	// recognised: greetings rarely run half a minute.
	beepWait = 30 * time.Second
	// greetingOverAfter of quiet on the line means the greeting ended and
	// no beep is coming.
	greetingOverAfter = 2500 * time.Millisecond
	// beepRecent: a beep that ended this recently, with the line quiet
	// since, means the machine is recording already.
	beepRecent = 10 * time.Second
)

// causeVoicemail cuts the agent's voice over a machine's greeting.
const causeVoicemail = "voicemail"

// heldForBeep is a voicemail message waiting for the beep.
type heldForBeep struct {
	since, deadline time.Time
}

// waitForBeep stops the agent talking over the greeting and holds what it
// says next until the beep ended, unless it already has. It returns how
// much longer the call may now take to end.
func (cv *conversation) waitForBeep() time.Duration {
	now := time.Now()
	cv.cutAgent(causeVoicemail, true)
	if b := cv.beepEnded; !b.IsZero() && now.Sub(b) < beepRecent && !cv.media.lastLoudCalleeAudio().After(b) {
		cv.log.Info("call.voicemail_beep", zap.Int64("beep_end_ms", b.Sub(cv.answered).Milliseconds()),
			zap.String("when", "before the machine was recognised"))
		return 0
	}
	cv.player.Hold()
	cv.held = &heldForBeep{since: now, deadline: now.Add(beepWait)}
	return beepWait
}

// onBeep: the callee's audio had a beep that ended at at.
func (cv *conversation) onBeep(at time.Time) {
	cv.beepEnded = at
	if cv.held == nil {
		return
	}
	cv.releaseMessage("beep", zap.Int64("beep_end_ms", at.Sub(cv.answered).Milliseconds()),
		zap.Duration("detected_after", time.Since(at)))
}

// heldTick releases a held message when no beep is coming.
func (cv *conversation) heldTick(now time.Time) {
	h := cv.held
	if h == nil {
		return
	}
	quietSince := cv.media.lastLoudCalleeAudio()
	if quietSince.Before(h.since) {
		quietSince = h.since
	}
	switch {
	case now.After(h.deadline):
		cv.releaseMessage("no beep in time")
	case now.Sub(quietSince) >= greetingOverAfter:
		cv.releaseMessage("the greeting ended without a beep")
	}
}

func (cv *conversation) releaseMessage(why string, fields ...zap.Field) {
	cv.player.Release()
	cv.log.Info("call.voicemail_beep", append(fields, zap.String("when", why),
		zap.Duration("held", time.Since(cv.held.since)))...)
	cv.held = nil
}
