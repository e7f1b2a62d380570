package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/docshield/voice-worker/internal/realtime"
)

// Tool names the model may call.
const (
	ToolEndCall           = "end_call"
	ToolTransferToHuman   = "transfer_to_human"
	ToolVoicemailDetected = "voicemail_detected"
	ToolSetDisposition    = "set_disposition"
	ToolScheduleCallback  = "schedule_callback"
	ToolOptOut            = "opt_out"
	ToolSendDTMF          = "send_dtmf"
)

// Dispositions the model may set.
var Dispositions = []string{"interested", "not_interested", "callback_requested", "wrong_number", "do_not_call", "other"}

type toolSpec struct {
	description string
	parameters  string
}

var toolSpecs = map[string]toolSpec{
	ToolEndCall: {"End the call after saying goodbye. Use when the conversation is finished.",
		`{"type":"object","properties":{"reason":{"type":"string","description":"why the call ends, in a few words"}},"required":["reason"],"additionalProperties":false}`},
	ToolTransferToHuman: {"Transfer the person to a human colleague when they ask for one or you cannot help.",
		`{"type":"object","properties":{"reason":{"type":"string"}},"additionalProperties":false}`},
	ToolVoicemailDetected: {"Call this as soon as you hear an answering machine or voicemail greeting instead of a person.",
		`{"type":"object","properties":{},"additionalProperties":false}`},
	ToolSetDisposition: {"Record the outcome of the conversation.",
		`{"type":"object","properties":{"disposition":{"type":"string","enum":["interested","not_interested","callback_requested","wrong_number","do_not_call","other"]},"note":{"type":"string"}},"required":["disposition"],"additionalProperties":false}`},
	ToolScheduleCallback: {"Schedule a call back at the time the person asked for.",
		`{"type":"object","properties":{"when":{"type":"string","description":"RFC 3339 date and time with offset, e.g. 2026-11-27T15:00:00-05:00"},"note":{"type":"string"}},"required":["when"],"additionalProperties":false}`},
	ToolOptOut: {"The person asked not to be called again. Call this immediately, then confirm politely and end the call.",
		`{"type":"object","properties":{"reason":{"type":"string"}},"additionalProperties":false}`},
	ToolSendDTMF: {"Press keys on the phone keypad, for an automated phone menu (\"press 2 for the front desk\"). Then stay quiet and listen to what the menu says next.",
		`{"type":"object","properties":{"digits":{"type":"string","description":"the keys to press, in order: 0-9, * and #, at most 20"}},"required":["digits"],"additionalProperties":false}`},
}

// AllTools lists every tool, in a stable order.
var AllTools = []string{ToolEndCall, ToolTransferToHuman, ToolVoicemailDetected, ToolSetDisposition, ToolScheduleCallback, ToolOptOut, ToolSendDTMF}

// Tools returns the realtime tool definitions for the enabled names (all
// when none are given). end_call and opt_out are always on: the agent must
// always be able to hang up and to honour a do-not-call request.
func Tools(enabled []string) ([]realtime.Tool, error) {
	want := map[string]bool{ToolEndCall: true, ToolOptOut: true}
	if len(enabled) == 0 {
		for _, n := range AllTools {
			want[n] = true
		}
	}
	for _, n := range enabled {
		if _, ok := toolSpecs[n]; !ok {
			return nil, fmt.Errorf("unknown tool %q (known: %s)", n, strings.Join(AllTools, ", "))
		}
		want[n] = true
	}
	var out []realtime.Tool
	for _, n := range AllTools {
		if want[n] {
			s := toolSpecs[n]
			out = append(out, realtime.Tool{Name: n, Description: s.description, Parameters: json.RawMessage(s.parameters)})
		}
	}
	return out, nil
}

// Action is a validated tool call.
type Action struct {
	Tool        string
	Reason      string
	Disposition string
	Note        string
	CallbackAt  time.Time
	// Digits are the keys send_dtmf presses, validated: 0-9, * and #.
	Digits string
}

// ErrBadToolCall marks arguments the model got wrong. The call continues:
// the error goes back to the model as the tool's output so it can retry.
var ErrBadToolCall = errors.New("invalid tool call")

// The keys send_dtmf may press, and how many at once.
const (
	dtmfKeys      = "0123456789*#"
	maxDTMFDigits = 20
)

// Limits on model-supplied text stored in the call record.
const (
	maxReasonLen   = 500
	maxCallbackAge = 90 * 24 * time.Hour
)

// ParseToolCall validates a function call from the model like any other
// input: unknown tools, malformed JSON, unknown fields, bad values and
// callback times in the past or too far ahead are errors naming the field.
func ParseToolCall(name, args string, now time.Time) (Action, error) {
	if _, ok := toolSpecs[name]; !ok {
		return Action{}, fmt.Errorf("%w: unknown tool %q", ErrBadToolCall, truncate(name, 40))
	}
	var a struct {
		Reason      *string `json:"reason"`
		Disposition *string `json:"disposition"`
		Note        *string `json:"note"`
		When        *string `json:"when"`
		Digits      *string `json:"digits"`
	}
	if strings.TrimSpace(args) == "" {
		args = "{}"
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(args)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return Action{}, fmt.Errorf("%w: %s: arguments are not the expected JSON object: %v", ErrBadToolCall, name, err)
	}
	act := Action{Tool: name, Reason: limit(a.Reason), Note: limit(a.Note)}
	// Fields a tool does not take are refused, so a confused model hears
	// about it instead of having them silently ignored.
	allowed := map[string][]string{
		ToolEndCall: {"reason"}, ToolTransferToHuman: {"reason"}, ToolOptOut: {"reason"},
		ToolVoicemailDetected: {}, ToolSetDisposition: {"disposition", "note"}, ToolScheduleCallback: {"when", "note"},
		ToolSendDTMF: {"digits"},
	}[name]
	given := map[string]bool{"reason": a.Reason != nil, "disposition": a.Disposition != nil, "note": a.Note != nil,
		"when": a.When != nil, "digits": a.Digits != nil}
	for field, set := range given {
		if set && !contains(allowed, field) {
			return Action{}, fmt.Errorf("%w: %s does not take %q", ErrBadToolCall, name, field)
		}
	}
	switch name {
	case ToolEndCall:
		if strings.TrimSpace(act.Reason) == "" {
			return Action{}, fmt.Errorf("%w: end_call: reason is required", ErrBadToolCall)
		}
	case ToolSetDisposition:
		if a.Disposition == nil || !contains(Dispositions, *a.Disposition) {
			return Action{}, fmt.Errorf("%w: set_disposition: disposition must be one of %s", ErrBadToolCall, strings.Join(Dispositions, ", "))
		}
		act.Disposition = *a.Disposition
	case ToolSendDTMF:
		if a.Digits == nil {
			return Action{}, fmt.Errorf("%w: send_dtmf: digits is required", ErrBadToolCall)
		}
		d := strings.TrimSpace(*a.Digits)
		if d == "" || len(d) > maxDTMFDigits || strings.Trim(d, dtmfKeys) != "" {
			return Action{}, fmt.Errorf("%w: send_dtmf: digits must be 1 to %d of the keys 0-9, * and #", ErrBadToolCall, maxDTMFDigits)
		}
		act.Digits = d
	case ToolScheduleCallback:
		if a.When == nil {
			return Action{}, fmt.Errorf("%w: schedule_callback: when is required", ErrBadToolCall)
		}
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(*a.When))
		if err != nil {
			return Action{}, fmt.Errorf("%w: schedule_callback: when must be RFC 3339 with an offset, like 2026-11-27T15:00:00-05:00", ErrBadToolCall)
		}
		if !t.After(now) || t.Sub(now) > maxCallbackAge {
			return Action{}, fmt.Errorf("%w: schedule_callback: when must be in the future and within 90 days", ErrBadToolCall)
		}
		act.CallbackAt = t.UTC()
	}
	return act, nil
}

func limit(s *string) string {
	if s == nil {
		return ""
	}
	return truncate(clean(*s), maxReasonLen)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
