package store

import (
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// The documents below are the MongoDB contract shared with the campaign
// backend, which may not be written in Go: field names are snake_case, times
// are BSON dates (UTC), durations are integer milliseconds or seconds with
// the unit in the name.

// CampaignStatus is a campaign's lifecycle state.
type CampaignStatus string

const (
	CampaignDraft     CampaignStatus = "draft"
	CampaignScheduled CampaignStatus = "scheduled"
	CampaignRunning   CampaignStatus = "running"
	CampaignPaused    CampaignStatus = "paused"
	CampaignCompleted CampaignStatus = "completed"
	CampaignCancelled CampaignStatus = "cancelled"
)

// CampaignStatuses are every CampaignStatus, in lifecycle order.
var CampaignStatuses = []CampaignStatus{
	CampaignDraft, CampaignScheduled, CampaignRunning, CampaignPaused, CampaignCompleted, CampaignCancelled,
}

// Campaign is one outbound calling campaign.
type Campaign struct {
	ID               bson.ObjectID  `bson:"_id,omitempty"`
	Name             string         `bson:"name"`
	Status           CampaignStatus `bson:"status"`
	Agent            AgentConfig    `bson:"agent"`
	Schedule         Schedule       `bson:"schedule"`
	ConcurrencyLimit int            `bson:"concurrency_limit"`
	Retry            RetryPolicy    `bson:"retry"`
	// CallerID is the E.164 number shown to the callee.
	CallerID   string    `bson:"caller_id,omitempty"`
	SIPTrunkID string    `bson:"sip_trunk_id,omitempty"`
	CreatedAt  time.Time `bson:"created_at,omitempty"`
	UpdatedAt  time.Time `bson:"updated_at,omitempty"`
}

// AgentConfig is what the voice agent says and how.
type AgentConfig struct {
	// InstructionsTemplate is rendered with the contact's variables.
	InstructionsTemplate string   `bson:"instructions_template"`
	Greeting             string   `bson:"greeting,omitempty"`
	Voice                string   `bson:"voice,omitempty"`
	Model                string   `bson:"model,omitempty"`
	Tools                []string `bson:"tools,omitempty"`
}

// Schedule says when a campaign may call.
type Schedule struct {
	WindowStart time.Time `bson:"window_start,omitempty"`
	WindowEnd   time.Time `bson:"window_end,omitempty"`
	// CallingHoursStart and CallingHoursEnd are "HH:MM" in the contact's
	// time zone (or DefaultTimeZone).
	CallingHoursStart string `bson:"calling_hours_start,omitempty"`
	CallingHoursEnd   string `bson:"calling_hours_end,omitempty"`
	// CallingDays are lowercase three-letter weekdays: "mon" ... "sun".
	CallingDays     []string `bson:"calling_days,omitempty"`
	DefaultTimeZone string   `bson:"default_time_zone,omitempty"`
}

// RetryPolicy says whether and when a contact is called again.
type RetryPolicy struct {
	MaxAttempts    int      `bson:"max_attempts"`
	RetryOutcomes  []string `bson:"retry_outcomes,omitempty"`
	BackoffSeconds []int    `bson:"backoff_seconds,omitempty"`
}

// ContactStatus is where a contact stands in its campaign.
type ContactStatus string

const (
	ContactPending   ContactStatus = "pending"
	ContactCalling   ContactStatus = "calling"
	ContactCompleted ContactStatus = "completed"
	ContactExhausted ContactStatus = "exhausted"
	ContactDoNotCall ContactStatus = "do_not_call"
)

// ContactStatuses are every ContactStatus; any other value in a contact
// document is a backend's mistake, and the contact is never dispatched.
var ContactStatuses = []ContactStatus{ContactPending, ContactCalling, ContactCompleted, ContactExhausted, ContactDoNotCall}

// Contact is one person to call within a campaign.
type Contact struct {
	ID         bson.ObjectID `bson:"_id,omitempty"`
	CampaignID bson.ObjectID `bson:"campaign_id"`
	// Phone is E.164, e.g. +14155550100.
	Phone         string            `bson:"phone"`
	Name          string            `bson:"name,omitempty"`
	TimeZone      string            `bson:"time_zone,omitempty"`
	Variables     map[string]string `bson:"variables,omitempty"`
	Status        ContactStatus     `bson:"status"`
	Attempts      int               `bson:"attempts"`
	NextAttemptAt time.Time         `bson:"next_attempt_at,omitempty"`
	LastOutcome   string            `bson:"last_outcome,omitempty"`
	LastAttemptID string            `bson:"last_attempt_id,omitempty"`
	CreatedAt     time.Time         `bson:"created_at,omitempty"`
	UpdatedAt     time.Time         `bson:"updated_at,omitempty"`
}

// CallStatus is a dial attempt's state. It only moves forward:
// queued → dialing → ringing → in_progress → one terminal status
// (ringing and in_progress may be skipped).
type CallStatus string

const (
	CallQueued      CallStatus = "queued"
	CallDialing     CallStatus = "dialing"
	CallRinging     CallStatus = "ringing"
	CallInProgress  CallStatus = "in_progress"
	CallCompleted   CallStatus = "completed"
	CallNoAnswer    CallStatus = "no_answer"
	CallBusy        CallStatus = "busy"
	CallVoicemail   CallStatus = "voicemail"
	CallFailed      CallStatus = "failed"
	CallInterrupted CallStatus = "interrupted"
	CallCancelled   CallStatus = "cancelled"
)

// TerminalCallStatuses are the statuses an attempt never leaves.
var TerminalCallStatuses = []CallStatus{
	CallCompleted, CallNoAnswer, CallBusy, CallVoicemail, CallFailed, CallInterrupted, CallCancelled,
}

// activeCallStatuses are held by an owner under a lease.
var activeCallStatuses = []CallStatus{CallDialing, CallRinging, CallInProgress}

// Terminal reports whether the attempt is over.
func (s CallStatus) Terminal() bool {
	for _, t := range TerminalCallStatuses {
		if s == t {
			return true
		}
	}
	return false
}

// Valid reports whether s is one of the known statuses.
func (s CallStatus) Valid() bool {
	switch s {
	case CallQueued, CallDialing, CallRinging, CallInProgress:
		return true
	}
	return s.Terminal()
}

// Call is one dial attempt; its _id is the attempt id, which is also the
// asynq task id, so a duplicate delivery finds the same document.
type Call struct {
	ID string `bson:"_id"`
	// CampaignID and ContactID are zero for an inline one-off call.
	CampaignID bson.ObjectID `bson:"campaign_id,omitempty"`
	ContactID  bson.ObjectID `bson:"contact_id,omitempty"`
	Attempt    int           `bson:"attempt"`
	Status     CallStatus    `bson:"status"`
	// Owner is the worker that claimed the attempt; Fence is its claim's
	// token, required by every later write.
	Owner string `bson:"owner,omitempty"`
	Fence string `bson:"fence,omitempty"`
	// Claims counts successful claims; anything but 0 or 1 is a bug.
	Claims int `bson:"claims"`

	CreatedAt      time.Time `bson:"created_at,omitempty"`
	QueuedAt       time.Time `bson:"queued_at,omitempty"`
	DialingAt      time.Time `bson:"dialing_at,omitempty"`
	RingingAt      time.Time `bson:"ringing_at,omitempty"`
	AnsweredAt     time.Time `bson:"answered_at,omitempty"`
	EndedAt        time.Time `bson:"ended_at,omitempty"`
	LeaseExpiresAt time.Time `bson:"lease_expires_at,omitempty"`

	Room      string `bson:"room,omitempty"`
	SIPCallID string `bson:"sip_call_id,omitempty"`

	// Inline one-off call fields.
	Phone        string            `bson:"phone,omitempty"`
	Instructions string            `bson:"instructions,omitempty"`
	Greeting     string            `bson:"greeting,omitempty"`
	Variables    map[string]string `bson:"variables,omitempty"`
	CallerID     string            `bson:"caller_id,omitempty"`
	// TimeZone is the inline call's IANA zone (one of its number's
	// country), when the producer named one; calling hours are evaluated
	// in it instead of in every zone the number may ring in.
	TimeZone string `bson:"time_zone,omitempty"`

	// WaitingUntil and WaitingReason say that a queued inline call was
	// outside calling hours when its task ran, and is scheduled for the
	// next opening: when, and why it waits ("outside calling hours
	// (08:00–21:00): it is Sun 00:29 JST in Asia/Tokyo"). They stay after
	// the call is placed, as the record of its last wait.
	WaitingUntil  time.Time `bson:"waiting_until,omitempty"`
	WaitingReason string    `bson:"waiting_reason,omitempty"`

	Transcript  []Turn         `bson:"transcript,omitempty"`
	ToolCalls   []ToolCall     `bson:"tool_calls,omitempty"`
	Outcome     string         `bson:"outcome,omitempty"`
	Summary     string         `bson:"summary,omitempty"`
	Extracted   map[string]any `bson:"extracted,omitempty"`
	Recording   *Recording     `bson:"recording,omitempty"`
	LatenciesMS []int          `bson:"latencies_ms,omitempty"`
	Usage       *Usage         `bson:"usage,omitempty"`
	Error       string         `bson:"error,omitempty"`

	// The recording's state beyond the final object (see RecordingState
	// and docs/CAMPAIGNS.md).
	RecordingStatus  RecordingStatus   `bson:"recording_status,omitempty"`
	RecordingLostMS  int64             `bson:"recording_lost_ms,omitempty"`
	RecordingError   string            `bson:"recording_error,omitempty"`
	RecordingPartial *PartialRecording `bson:"recording_partial,omitempty"`
	RecordingPending *RecordingPending `bson:"recording_pending,omitempty"`
}

// Turn is one utterance. Offsets are milliseconds from the start of the
// call's recording.
type Turn struct {
	// Role is "agent" or "callee".
	Role    string `bson:"role"`
	Text    string `bson:"text"`
	StartMS int64  `bson:"start_ms"`
	EndMS   int64  `bson:"end_ms"`
}

// ToolCall is one function call the agent made during the call.
type ToolCall struct {
	Name string `bson:"name"`
	// Arguments and Result are JSON text as exchanged with the model.
	Arguments string    `bson:"arguments,omitempty"`
	Result    string    `bson:"result,omitempty"`
	At        time.Time `bson:"at"`
}

// Recording locates the call's audio in S3.
type Recording struct {
	Bucket     string `bson:"bucket"`
	Key        string `bson:"key"`
	Bytes      int64  `bson:"bytes"`
	DurationMS int64  `bson:"duration_ms"`
	Format     string `bson:"format"`
	SHA256     string `bson:"sha256"`
}

// Usage is what the call consumed from the model.
type Usage struct {
	InputTokens       int   `bson:"input_tokens"`
	OutputTokens      int   `bson:"output_tokens"`
	InputAudioTokens  int   `bson:"input_audio_tokens"`
	OutputAudioTokens int   `bson:"output_audio_tokens"`
	CalleeAudioMS     int64 `bson:"callee_audio_ms"`
	AgentAudioMS      int64 `bson:"agent_audio_ms"`
}

// DoNotCall is one number that must never be dialed again.
type DoNotCall struct {
	ID bson.ObjectID `bson:"_id,omitempty"`
	// Phone is E.164.
	Phone string `bson:"phone"`
	// Reason is free text, e.g. "callee asked during call".
	Reason string `bson:"reason,omitempty"`
	// Source says who added it, e.g. "agent:opt_out", "backend", "operator".
	Source    string    `bson:"source,omitempty"`
	CreatedAt time.Time `bson:"created_at"`
}
