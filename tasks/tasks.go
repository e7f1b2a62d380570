// Package tasks is the contract between the campaign backend and the worker:
// task type names, queues and typed JSON payloads. Each payload type owns its
// name, its JSON shape and its validation, and Validate runs before any side
// effect on both sides (enqueue and handle).
package tasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/docshield/voice-worker/internal/agent"
	"github.com/docshield/voice-worker/internal/phone"
	"github.com/hibiken/asynq"
)

// Task type names.
const (
	TypeCallOutbound     = "call:outbound"
	TypeCampaignDispatch = "campaign:dispatch"
	TypeCallAnalyze      = "call:analyze"
	TypeSystemProbe      = "system:probe"
)

// Payload is implemented by every task payload.
type Payload interface {
	// TaskType is the asynq type name.
	TaskType() string
	// Queue is the queue the task belongs on.
	Queue() string
	// Validate reports every problem, each naming its JSON field.
	Validate() error
}

// ErrInvalidPayload marks a payload that can never succeed. Handlers wrap it
// together with asynq.SkipRetry so the task is archived with the reason.
var ErrInvalidPayload = errors.New("invalid payload")

// FieldErrors lists payload problems by JSON field.
type FieldErrors []string

func (f FieldErrors) Error() string { return strings.Join(f, "; ") }

func (f *FieldErrors) add(field, format string, args ...any) {
	*f = append(*f, field+": "+fmt.Sprintf(format, args...))
}

func (f FieldErrors) err() error {
	if len(f) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidPayload, f)
}

var (
	objectIDRe  = regexp.MustCompile(`^[0-9a-f]{24}$`)
	attemptIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{8,64}$`)
	varNameRe   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
)

func checkObjectID(f *FieldErrors, field, v string) {
	switch {
	case v == "":
		f.add(field, "is required")
	case !objectIDRe.MatchString(v):
		f.add(field, "must be a 24-character lowercase hex ObjectID, got %q", truncate(v, 40))
	}
}

func checkAttemptID(f *FieldErrors, field, v string) {
	switch {
	case v == "":
		f.add(field, "is required")
	case !attemptIDRe.MatchString(v):
		f.add(field, "must be 8-64 characters of A-Z a-z 0-9 _ -, got %q", truncate(v, 40))
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// CampaignDispatch asks the worker to dispatch due contacts of one campaign.
type CampaignDispatch struct {
	CampaignID string `json:"campaign_id"`
}

func (CampaignDispatch) TaskType() string { return TypeCampaignDispatch }
func (CampaignDispatch) Queue() string    { return QueueDefault }
func (p CampaignDispatch) Validate() error {
	var f FieldErrors
	checkObjectID(&f, "campaign_id", p.CampaignID)
	return f.err()
}

// CallAnalyze asks for the post-call analysis of one attempt.
type CallAnalyze struct {
	AttemptID string `json:"attempt_id"`
}

func (CallAnalyze) TaskType() string { return TypeCallAnalyze }
func (CallAnalyze) Queue() string    { return QueueAnalysis }
func (p CallAnalyze) Validate() error {
	var f FieldErrors
	checkAttemptID(&f, "attempt_id", p.AttemptID)
	return f.err()
}

// CallOutbound places one call: either an attempt the dispatcher already
// wrote (AttemptID), or an inline one-off call for which the worker creates
// the attempt first.
type CallOutbound struct {
	AttemptID string      `json:"attempt_id,omitempty"`
	Inline    *InlineCall `json:"inline,omitempty"`
}

// InlineCall is a one-off call without a campaign.
type InlineCall struct {
	// AttemptID is the id the attempt is created with; the enqueuer picks
	// it so that a duplicate enqueue is the same attempt.
	AttemptID    string            `json:"attempt_id"`
	Phone        string            `json:"phone"`
	Instructions string            `json:"instructions"`
	Greeting     string            `json:"greeting,omitempty"`
	Variables    map[string]string `json:"variables,omitempty"`
	CallerID     string            `json:"caller_id,omitempty"`
	// TimeZone is the IANA zone the callee is in, one of the zones of the
	// number's country. Calling hours (08:00–21:00) are evaluated in it.
	// Without it they are evaluated in every zone the number may ring in
	// (phone.Zones), and all of them must be inside the hours.
	TimeZone string `json:"time_zone,omitempty"`
}

// Limits on inline calls: a prompt is not a document store. Lengths are in
// characters (Unicode code points), as agent.CheckVariable counts them.
const (
	MaxInstructionsLen = 20000
	MaxVariables       = 50
	MaxVariableLen     = agent.MaxVariableLen
)

func (CallOutbound) TaskType() string { return TypeCallOutbound }
func (CallOutbound) Queue() string    { return QueueCalls }
func (p CallOutbound) Validate() error {
	var f FieldErrors
	switch {
	case p.AttemptID == "" && p.Inline == nil:
		f.add("attempt_id", "is required (or give an inline call)")
	case p.AttemptID != "" && p.Inline != nil:
		f.add("attempt_id", "and inline are mutually exclusive")
	case p.AttemptID != "":
		checkAttemptID(&f, "attempt_id", p.AttemptID)
	default:
		p.Inline.validate(&f)
	}
	return f.err()
}

func (c *InlineCall) validate(f *FieldErrors) {
	checkAttemptID(f, "inline.attempt_id", c.AttemptID)
	if !phone.Valid(c.Phone) {
		// The number itself is not echoed: it is personal data.
		f.add("inline.phone", "must be an E.164 number like +14155550100")
	} else {
		c.validateZone(f)
	}
	if c.CallerID != "" && !phone.Valid(c.CallerID) {
		f.add("inline.caller_id", "must be an E.164 number like +14155550100")
	}
	switch n := utf8.RuneCountInString(strings.TrimSpace(c.Instructions)); {
	case n == 0:
		f.add("inline.instructions", "is required")
	case n > MaxInstructionsLen:
		f.add("inline.instructions", "is %d characters, at most %d allowed", n, MaxInstructionsLen)
	}
	if len(c.Variables) > MaxVariables {
		f.add("inline.variables", "has %d entries, at most %d allowed", len(c.Variables), MaxVariables)
	}
	names := make([]string, 0, len(c.Variables))
	for k := range c.Variables {
		names = append(names, k)
	}
	sort.Strings(names) // stable error order
	for _, k := range names {
		if !varNameRe.MatchString(k) {
			f.add("inline.variables", "name %q must be a letter or _ followed by letters, digits or _", truncate(k, 40))
		} else if err := agent.CheckVariable(k, c.Variables[k]); err != nil {
			var long *agent.VariableTooLongError
			if errors.As(err, &long) {
				f.add("inline.variables."+k, "is %d characters, at most %d allowed", long.Len, MaxVariableLen)
			} else {
				f.add("inline.variables."+k, "%v", err)
			}
		}
	}
}

// validateZone checks that the call's local time can be known, since no
// call is placed outside calling hours there: a named zone must be one of
// the number's country, and without one the number must map to zones.
func (c *InlineCall) validateZone(f *FieldErrors) {
	if c.TimeZone != "" {
		if err := phone.CheckZone(c.Phone, c.TimeZone); errors.Is(err, phone.ErrNoZone) {
			f.add("inline.phone", "the number's country is unknown, so its local time cannot be known and it is never called")
		} else if err != nil {
			f.add("inline.time_zone", "%v", err)
		}
		return
	}
	if _, err := phone.Zones(c.Phone); err != nil {
		if phone.Region(c.Phone) == "" {
			f.add("inline.phone", "the number's country is unknown, so its local time cannot be known and it is never called")
		} else {
			f.add("inline.time_zone", "is required for this number: no time zone is known for it; name one of its country's zones")
		}
	}
}

// SystemProbe is a no-op task operators enqueue to see the pipeline work
// end to end (`worker enqueue --type system:probe`). Hold keeps it active
// for a while, to watch shutdown and backpressure behave.
type SystemProbe struct {
	Hold Duration `json:"hold,omitempty"`
}

// MaxProbeHold bounds a probe so it can never occupy a slot for long.
const MaxProbeHold = 5 * time.Minute

func (SystemProbe) TaskType() string { return TypeSystemProbe }
func (SystemProbe) Queue() string    { return QueueLow }
func (p SystemProbe) Validate() error {
	var f FieldErrors
	if p.Hold < 0 || time.Duration(p.Hold) > MaxProbeHold {
		f.add("hold", "must be between 0s and %s, got %s", MaxProbeHold, time.Duration(p.Hold))
	}
	return f.err()
}

// Duration is a time.Duration written in JSON as "90s" or "1m30s".
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`must be a duration string like "30s"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf(`must be a duration string like "30s", got %q`, s)
	}
	*d = Duration(v)
	return nil
}

// New builds an asynq task from a validated payload, on the payload's queue.
// Callers add asynq.TaskID, asynq.ProcessIn and friends as needed.
func New(p Payload, opts ...asynq.Option) (*asynq.Task, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", p.TaskType(), err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(p.TaskType(), b, append([]asynq.Option{asynq.Queue(p.Queue())}, opts...)...), nil
}

// Unmarshal parses and validates a payload into p (a pointer) strictly:
// unknown fields are errors, so a typo in the backend's JSON is caught
// rather than silently ignored.
func Unmarshal(b []byte, p Payload) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(p); err != nil {
		return fmt.Errorf("%w: %s payload does not match its contract: %v", ErrInvalidPayload, p.TaskType(), err)
	}
	if dec.More() {
		return fmt.Errorf("%w: %s payload has data after the JSON object", ErrInvalidPayload, p.TaskType())
	}
	return p.Validate()
}

// ForType returns an empty payload of the named type, for tools (the
// enqueue CLI) that receive the type as a string.
func ForType(typ string) (Payload, bool) {
	switch typ {
	case TypeCallOutbound:
		return &CallOutbound{}, true
	case TypeCampaignDispatch:
		return &CampaignDispatch{}, true
	case TypeCallAnalyze:
		return &CallAnalyze{}, true
	case TypeSystemProbe:
		return &SystemProbe{}, true
	}
	return nil, false
}

// Types lists every task type, for help text.
var Types = []string{TypeCallOutbound, TypeCampaignDispatch, TypeCallAnalyze, TypeSystemProbe}

// AttemptIDOf extracts the attempt id from a payload for log lines, without
// validating it; "" when the payload has none.
func AttemptIDOf(payload []byte) string {
	var p struct {
		AttemptID string `json:"attempt_id"`
		Inline    *struct {
			AttemptID string `json:"attempt_id"`
		} `json:"inline"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return ""
	}
	if p.AttemptID == "" && p.Inline != nil {
		return truncate(p.Inline.AttemptID, 64)
	}
	return truncate(p.AttemptID, 64)
}

// String prints the duration as Go does ("1m30s").
func (d Duration) String() string { return time.Duration(d).String() }
