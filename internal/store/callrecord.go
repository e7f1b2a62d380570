package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// CallDetails is what the call flow learns during a live call beyond its
// status, transcript and tool calls: why it ended, what the agent recorded
// with its tools, and where the callee interrupted the agent. The fields
// sit at the top level of the call document next to Call's; zero fields
// are left as they are.
type CallDetails struct {
	// EndReason says in a few words why the call ended, for every terminal
	// status ("agent ended the call: completed", "callee hung up", "busy").
	EndReason string `bson:"end_reason,omitempty"`
	// Disposition and DispositionNote come from the agent's set_disposition.
	Disposition     string `bson:"disposition,omitempty"`
	DispositionNote string `bson:"disposition_note,omitempty"`
	// CallbackAt is when the callee asked to be called back
	// (schedule_callback), for the campaign's retry decision.
	CallbackAt   time.Time `bson:"callback_at,omitempty"`
	CallbackNote string    `bson:"callback_note,omitempty"`
	// OptedOut: the callee asked not to be called again (opt_out); the
	// number went on the do-not-call list during the call.
	OptedOut bool `bson:"opted_out,omitempty"`
	// TransferredTo is the number the call was handed to (transfer_to_human).
	TransferredTo string `bson:"transferred_to,omitempty"`
	// Interruptions are the places where the agent's voice was cut.
	Interruptions []Interruption `bson:"interruptions,omitempty"`
	// RecordingError says why the call has no (complete) recording.
	RecordingError string `bson:"recording_error,omitempty"`
}

// Interruption is one cut of the agent's voice: the callee barged in, or
// the worker cut the agent short to wrap up.
type Interruption struct {
	// Cause is "callee" (the model's voice activity detection heard the
	// callee), "callee_local" (the worker's own detector did, first),
	// "max_duration" or "shutdown".
	Cause string `bson:"cause"`
	// AtMS is the offset from the answer, like transcript offsets.
	AtMS int64 `bson:"at_ms"`
	// ItemID is the model's assistant item that was cut, and PlayedMS how
	// much of it the callee heard: the truncation point sent to the model.
	ItemID   string `bson:"item_id,omitempty"`
	PlayedMS int    `bson:"played_ms"`
	// DroppedMS is the agent audio that was queued and never played.
	DroppedMS int `bson:"dropped_ms"`
}

// RecordCallDetails saves details while the call is live, so that a crash
// keeps them (a requested callback, a disposition).
func (s *Store) RecordCallDetails(ctx context.Context, c Claim, d CallDetails) error {
	set, err := toDoc(d)
	if err != nil {
		return fmt.Errorf("store: record details of attempt %q: encode CallDetails: %w", c.AttemptID, err)
	}
	if len(set) == 0 {
		return nil
	}
	return s.fencedUpdate(ctx, c, "record details", activeCallStatuses, bson.D{{Key: "$set", Value: set}})
}

// GetCallDetails reads the details of one attempt.
func (s *Store) GetCallDetails(ctx context.Context, attemptID string) (CallDetails, error) {
	var d CallDetails
	err := s.calls.FindOne(ctx, bson.D{{Key: "_id", Value: attemptID}},
		options.FindOne().SetProjection(bson.D{
			{Key: "end_reason", Value: 1}, {Key: "disposition", Value: 1}, {Key: "disposition_note", Value: 1},
			{Key: "callback_at", Value: 1}, {Key: "callback_note", Value: 1}, {Key: "opted_out", Value: 1},
			{Key: "transferred_to", Value: 1}, {Key: "interruptions", Value: 1}, {Key: "recording_error", Value: 1},
		})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return d, fmt.Errorf("store: get details of attempt %q: %w", attemptID, ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("store: get details of attempt %q: %w", attemptID, err)
	}
	return d, nil
}

// AgentCallSettings are agent settings of a campaign that only the call
// flow reads: they live in the campaign's agent object next to AgentConfig's
// fields (agent.voicemail_message, agent.transfer_to).
type AgentCallSettings struct {
	// VoicemailMessage is left on an answering machine (a template, like
	// the instructions); empty hangs up without a message.
	VoicemailMessage string `bson:"voicemail_message,omitempty"`
	// TransferTo is the E.164 number (or sip: URI) of the humans
	// transfer_to_human hands the call to; empty turns transfer off.
	TransferTo string `bson:"transfer_to,omitempty"`
}

// GetAgentCallSettings reads a campaign's AgentCallSettings.
func (s *Store) GetAgentCallSettings(ctx context.Context, campaignID bson.ObjectID) (AgentCallSettings, error) {
	var doc struct {
		Agent AgentCallSettings `bson:"agent"`
	}
	err := s.campaigns.FindOne(ctx, bson.D{{Key: "_id", Value: campaignID}},
		options.FindOne().SetProjection(bson.D{{Key: "agent", Value: 1}})).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return AgentCallSettings{}, fmt.Errorf("store: get agent settings of campaign %s: %w", campaignID.Hex(), ErrNotFound)
	}
	if err != nil {
		return AgentCallSettings{}, fmt.Errorf("store: get agent settings of campaign %s: %w", campaignID.Hex(), err)
	}
	return doc.Agent, nil
}
