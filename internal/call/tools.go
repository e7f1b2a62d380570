package call

import (
	"context"
	"fmt"
	"time"

	"github.com/docshield/voice-worker/internal/agent"
	"github.com/docshield/voice-worker/internal/realtime"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/telephony"
	"go.uber.org/zap"
)

// Tool calls are validated when they arrive and acted on when their
// response is done: the model is still talking until then, and the API
// refuses a new response while one is active. The exception is opt_out,
// whose do-not-call entry is written the moment it arrives.

// Tool outputs the model reads.
const (
	outputOK         = `{"ok":true}`
	outputOptedOut   = "Done: this number is on the do-not-call list and will not be called again. Confirm that to the person in one short sentence and say goodbye. Do not ask anything else."
	outputNoTransfer = "Transfer is not available on this call. Tell the person, and offer that someone will call them back."
	outputTransfer   = "Transferring the call now."
	outputVoicemail  = "Voicemail confirmed."
	outputDTMF       = "Pressed %s. Listen to what the menu says next."
)

// maxPendingTools bounds the tool calls waiting for their response's end.
const maxPendingTools = 16

// maxRecordedArgs bounds the model's argument text kept on the call.
const maxRecordedArgs = 2000

// transferTimeout bounds a transfer: the target's phone rings first.
const transferTimeout = 60 * time.Second

type pendingTool struct {
	call   realtime.FunctionCall
	at     time.Time
	action agent.Action
	err    error // invalid arguments: the error goes back to the model
}

func (cv *conversation) onToolCall(e realtime.FunctionCall, now time.Time) {
	act, err := agent.ParseToolCall(e.Name, e.Arguments, now)
	if err == nil && act.Tool == agent.ToolOptOut {
		cv.optOut(act.Reason)
	}
	if len(cv.tools) == maxPendingTools {
		cv.log.Warn("call.tool_call_dropped", zap.String("tool", e.Name))
		return
	}
	cv.tools = append(cv.tools, pendingTool{call: e, at: now, action: act, err: err})
}

// optOut puts the callee's number on the do-not-call list at once. If that
// write fails, the campaign's outcome handling adds it again (opted_out).
func (cv *conversation) optOut(reason string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(cv.ctx), writeTimeout)
	defer cancel()
	if reason == "" {
		reason = "asked during the call"
	}
	err := cv.a.r.o.Store.AddDoNotCall(ctx, store.DoNotCall{
		Phone: cv.script.Phone, Reason: fmt.Sprintf("%s (attempt %s)", reason, cv.a.claim.AttemptID), Source: "agent:opt_out",
	})
	if err != nil {
		cv.log.Error("call.opt_out_not_recorded", zap.Error(err))
	}
	cv.a.details.OptedOut = true
	cv.a.keep.recordDetails(store.CallDetails{OptedOut: true})
}

// toolEffect is what one tool call does to the call.
type toolEffect struct {
	output string // function_call_output for the model; "" sends none
	reply  bool   // the model should go on talking
	// end, if set, takes the call to its end, by priority when a response
	// made several such calls.
	end *toolEnd
}

type toolEnd struct {
	priority int
	ending   ending
	now      bool   // end at once, no last line
	line     string // a line the agent is told to say first ("" none)
	reply    bool   // the model's own reply to the tool output is the last line
	limit    time.Duration
	then     func() (ending, bool)
	// afterBeep: the line is a voicemail message, which waits for the
	// machine's beep (beepWait).
	afterBeep bool
}

func (cv *conversation) actOnTools(responseID string) (ending, bool) {
	var calls []pendingTool
	rest := cv.tools[:0]
	for _, t := range cv.tools {
		if t.call.ResponseID == responseID || t.call.ResponseID == "" {
			calls = append(calls, t)
		} else {
			rest = append(rest, t)
		}
	}
	cv.tools = rest
	if len(calls) == 0 {
		return ending{}, false
	}
	var end *toolEnd
	reply := false
	for _, t := range calls {
		eff := cv.act(t)
		if eff.output != "" && t.call.CallID != "" {
			if err := cv.sess.SendToolOutput(t.call.CallID, eff.output); err != nil {
				cv.log.Warn("call.tool_output_not_sent", zap.String("tool", t.call.Name), zap.Error(err))
			}
		}
		args := t.call.Arguments
		if len(args) > maxRecordedArgs {
			args = args[:maxRecordedArgs]
		}
		cv.a.keep.appendToolCall(store.ToolCall{Name: t.call.Name, Arguments: args, Result: eff.output, At: t.at})
		reply = reply || eff.reply
		if eff.end != nil && (end == nil || eff.end.priority > end.priority) {
			end = eff.end
		}
	}
	switch {
	case end == nil:
		if reply {
			cv.say("")
		}
	case end.now:
		return end.ending, true
	default:
		limit := end.limit
		if end.afterBeep {
			limit += cv.waitForBeep()
		}
		if end.line != "" {
			cv.say(end.line)
		} else if end.reply {
			cv.say("")
		}
		cv.startClosing(end.ending, limit, end.then)
	}
	return ending{}, false
}

func (cv *conversation) dropTools(responseID string) {
	rest := cv.tools[:0]
	for _, t := range cv.tools {
		if t.call.ResponseID != responseID {
			rest = append(rest, t)
		}
	}
	cv.tools = rest
}

// act carries out one tool call.
func (cv *conversation) act(t pendingTool) toolEffect {
	if t.err != nil {
		cv.log.Info("call.bad_tool_call", zap.String("tool", t.call.Name), zap.Error(t.err))
		return toolEffect{output: "error: " + t.err.Error(), reply: true}
	}
	a := t.action
	cv.log.Info("call.tool", zap.String("tool", a.Tool))
	switch a.Tool {
	case agent.ToolEndCall:
		return toolEffect{end: &toolEnd{priority: 1, limit: cv.t.Goodbye,
			ending: ending{status: store.CallCompleted, reason: "the agent ended the call: " + a.Reason}}}
	case agent.ToolOptOut:
		return toolEffect{output: outputOptedOut, end: &toolEnd{priority: 2, reply: true, limit: cv.t.Goodbye,
			ending: ending{status: store.CallCompleted, reason: "the callee opted out", outcome: "opted_out"}}}
	case agent.ToolTransferToHuman:
		if cv.script.TransferTo == "" {
			return toolEffect{output: outputNoTransfer, reply: true}
		}
		return toolEffect{output: outputTransfer, end: &toolEnd{priority: 3, limit: cv.t.Goodbye, then: cv.transfer,
			ending: ending{status: store.CallCompleted, reason: "the callee hung up before the transfer"}}}
	case agent.ToolVoicemailDetected:
		if cv.script.voicemail == "" {
			return toolEffect{end: &toolEnd{priority: 4, now: true,
				ending: ending{status: store.CallVoicemail, reason: "voicemail: no message to leave"}}}
		}
		return toolEffect{output: outputVoicemail, end: &toolEnd{priority: 4, limit: cv.t.Voicemail, afterBeep: true,
			line:   fmt.Sprintf(lineVoicemail, cv.script.voicemail),
			ending: ending{status: store.CallVoicemail, reason: "voicemail: message left"}}}
	case agent.ToolSetDisposition:
		cv.a.details.Disposition, cv.a.details.DispositionNote = a.Disposition, a.Note
		cv.a.keep.recordDetails(store.CallDetails{Disposition: a.Disposition, DispositionNote: a.Note})
		return toolEffect{output: outputOK, reply: true}
	case agent.ToolSendDTMF:
		if err := cv.seat.SendDTMF(a.Digits); err != nil {
			cv.log.Warn("call.dtmf_failed", zap.Error(err))
			return toolEffect{output: "error: the keys could not be pressed: " + err.Error(), reply: true}
		}
		// In the transcript as the agent's turn: what the practice's phone
		// tree heard from us.
		at := time.Since(cv.answered).Milliseconds()
		cv.a.keep.appendTurn(store.Turn{Role: "agent", Text: "[pressed " + a.Digits + "]", StartMS: at, EndMS: at})
		return toolEffect{output: fmt.Sprintf(outputDTMF, a.Digits)}
	case agent.ToolScheduleCallback:
		cv.a.details.CallbackAt, cv.a.details.CallbackNote = a.CallbackAt, a.Note
		cv.a.keep.recordDetails(store.CallDetails{CallbackAt: a.CallbackAt, CallbackNote: a.Note})
		return toolEffect{output: outputOK, reply: true}
	}
	// ParseToolCall knows no other tools.
	return toolEffect{output: "error: unknown tool", reply: true}
}

// transfer hands the callee to a human once the agent's "let me transfer
// you" has been heard. A failed transfer resumes the call.
func (cv *conversation) transfer() (ending, bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(cv.ctx), transferTimeout)
	defer cancel()
	err := cv.a.r.o.Dialer.Transfer(ctx, cv.leg, telephony.TransferRequest{To: cv.script.TransferTo, PlayDialtone: true})
	if err != nil {
		cv.log.Warn("call.transfer_failed", zap.Error(err))
		cv.say(lineNoTransfer)
		return ending{}, false
	}
	cv.a.details.TransferredTo = cv.script.TransferTo
	return ending{status: store.CallCompleted, reason: "transferred to a human", outcome: "transferred"}, true
}
