package chatsim

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Script drives a Server: Replies answer accepted requests in order, then
// Then answers every further one.
type Script struct {
	Replies []Reply `json:"replies,omitempty"`
	// Then answers once Replies run out (default: Auto).
	Then *Reply `json:"then,omitempty"`
}

// Reply is the answer to one accepted chat-completions request.
type Reply struct {
	// Content is the assistant message's content, sent as is: a valid
	// answer, or one that violates the schema.
	Content string `json:"content,omitempty"`
	// Auto answers with a JSON document generated from the request's
	// json_schema that satisfies it.
	Auto bool `json:"auto,omitempty"`
	// Refusal answers with a refusal instead of content.
	Refusal string `json:"refusal,omitempty"`
	// FinishReason defaults to "stop"; "length" says the answer was cut off.
	FinishReason string `json:"finish_reason,omitempty"`

	// Status, when set, answers with an API error of that HTTP status
	// (400 to 599) instead of a completion.
	Status int `json:"status,omitempty"`
	// RetryAfterSeconds sets Retry-After (and retry-after-ms) on an error.
	RetryAfterSeconds int `json:"retry_after_seconds,omitempty"`
	// Malformed answers 200 with a body that is not JSON.
	Malformed bool `json:"malformed,omitempty"`

	// DelayMS waits before answering (or until the client gives up).
	DelayMS int `json:"delay_ms,omitempty"`
}

// Answer is a Reply whose content is v as JSON.
func Answer(v any) Reply {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("chatsim: Answer: %v", err))
	}
	return Reply{Content: string(b)}
}

// RateLimited is a 429 with Retry-After.
func RateLimited(retryAfterSeconds int) Reply {
	return Reply{Status: 429, RetryAfterSeconds: retryAfterSeconds}
}

// ServerError is a 500.
func ServerError() Reply { return Reply{Status: 500} }

// Malformed is a 200 whose body is not JSON.
func Malformed() Reply { return Reply{Malformed: true} }

// Validate checks that each reply says one thing.
func (s Script) Validate() error {
	for i, r := range s.Replies {
		if err := r.validate(); err != nil {
			return fmt.Errorf("chatsim: Script.Replies[%d]: %w", i, err)
		}
	}
	if s.Then != nil {
		if err := s.Then.validate(); err != nil {
			return fmt.Errorf("chatsim: Script.Then: %w", err)
		}
	}
	return nil
}

func (r Reply) validate() error {
	kinds := 0
	for _, set := range []bool{r.Content != "", r.Auto, r.Refusal != "", r.Status != 0, r.Malformed} {
		if set {
			kinds++
		}
	}
	switch {
	case kinds != 1:
		return errors.New("set exactly one of content, auto, refusal, status, malformed")
	case r.Status != 0 && (r.Status < 400 || r.Status > 599):
		return fmt.Errorf("status %d is not an error status (400 to 599)", r.Status)
	case r.RetryAfterSeconds < 0 || r.DelayMS < 0:
		return errors.New("retry_after_seconds and delay_ms must not be negative")
	case r.RetryAfterSeconds > 0 && r.Status == 0:
		return errors.New("retry_after_seconds needs a status")
	}
	return nil
}
