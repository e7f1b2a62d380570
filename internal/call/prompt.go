package call

import (
	"context"
	"errors"
	"fmt"

	"github.com/docshield/voice-worker/internal/agent"
	"github.com/docshield/voice-worker/internal/realtime"
	"github.com/docshield/voice-worker/internal/store"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// Prompt is what a call needs before dialing: whom to call and what the
// agent is to say. Instructions, Greeting and VoicemailMessage are
// templates, rendered with Variables by the Runner so that a missing
// variable fails the attempt before the phone rings.
type Prompt struct {
	Phone            string // E.164
	Instructions     string
	Greeting         string // "": the model opens as its instructions say
	VoicemailMessage string // "": hang up on a voicemail without a message
	Variables        map[string]string

	Voice      string   // "": the worker's OPENAI_VOICE
	Tools      []string // enabled tools; none: all (agent.Tools)
	TransferTo string   // number for transfer_to_human; "": transfer unavailable
	CallerID   string   // "": the worker's CALLER_ID
}

// PromptSource finds the Prompt of an attempt.
type PromptSource func(ctx context.Context, c *store.Call) (Prompt, error)

// InlinePrompt is the prompt an inline one-off call carries in its attempt.
func InlinePrompt(c *store.Call) Prompt {
	return Prompt{
		Phone: c.Phone, Instructions: c.Instructions, Greeting: c.Greeting,
		Variables: c.Variables, CallerID: c.CallerID,
	}
}

// InlinePrompts serves inline calls only; a campaign attempt is an error.
func InlinePrompts(_ context.Context, c *store.Call) (Prompt, error) {
	if !c.CampaignID.IsZero() {
		return Prompt{}, errors.New("campaign attempt, but this worker has no campaign prompt source")
	}
	return InlinePrompt(c), nil
}

// CampaignReader reads what a campaign call's prompt is made of.
// *store.Store implements it.
type CampaignReader interface {
	GetCampaign(ctx context.Context, id bson.ObjectID) (*store.Campaign, error)
	GetContact(ctx context.Context, id bson.ObjectID) (*store.Contact, error)
	GetAgentCallSettings(ctx context.Context, campaignID bson.ObjectID) (store.AgentCallSettings, error)
}

// StorePrompts builds a campaign attempt's prompt from its campaign's agent
// settings and its contact's phone and variables; inline attempts carry
// their own.
func StorePrompts(st CampaignReader) PromptSource {
	return func(ctx context.Context, c *store.Call) (Prompt, error) {
		if c.CampaignID.IsZero() {
			return InlinePrompt(c), nil
		}
		camp, err := st.GetCampaign(ctx, c.CampaignID)
		if err != nil {
			return Prompt{}, err
		}
		contact, err := st.GetContact(ctx, c.ContactID)
		if err != nil {
			return Prompt{}, err
		}
		extra, err := st.GetAgentCallSettings(ctx, c.CampaignID)
		if err != nil {
			return Prompt{}, err
		}
		return Prompt{
			Phone:            contact.Phone,
			Instructions:     camp.Agent.InstructionsTemplate,
			Greeting:         camp.Agent.Greeting,
			VoicemailMessage: extra.VoicemailMessage,
			Variables:        contact.Variables,
			Voice:            camp.Agent.Voice,
			Tools:            camp.Agent.Tools,
			TransferTo:       extra.TransferTo,
			CallerID:         camp.CallerID,
		}, nil
	}
}

// script is a Prompt rendered: exactly what the agent will be told.
type script struct {
	Prompt
	instructions, greeting, voicemail string
	tools                             []realtime.Tool
}

// render fills the prompt's templates. Errors name the template.
func render(p Prompt) (script, error) {
	s := script{Prompt: p}
	if p.Instructions == "" {
		return s, errors.New("instructions are empty")
	}
	for _, t := range []struct {
		name string
		tmpl string
		out  *string
	}{
		{"instructions", p.Instructions, &s.instructions},
		{"greeting", p.Greeting, &s.greeting},
		{"voicemail message", p.VoicemailMessage, &s.voicemail},
	} {
		v, err := agent.Render(t.tmpl, p.Variables)
		if err != nil {
			return s, fmt.Errorf("%s: %w", t.name, err)
		}
		*t.out = v
	}
	return s, nil
}
