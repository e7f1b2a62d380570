package analysis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/docshield/voice-worker/internal/campaign"
	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/worker"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	openai "github.com/sashabaranov/go-openai"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap"
)

// Store is the part of MongoDB the analysis uses; *store.Store implements
// it, and tests wrap it to inject faults.
type Store interface {
	GetAnalysisInput(ctx context.Context, attemptID string) (*store.AnalysisInput, error)
	GetAnalysisSpec(ctx context.Context, campaignID bson.ObjectID) (store.AnalysisSpec, error)
	SaveAnalysisResult(ctx context.Context, attemptID string, r store.AnalysisResult) error
	RecordAnalysisFailure(ctx context.Context, attemptID string, a store.CallAnalysis) (bool, error)
	GetContact(ctx context.Context, id bson.ObjectID) (*store.Contact, error)
}

var _ Store = (*store.Store)(nil)

// Chat is the chat-completions API; *Client implements it.
type Chat interface {
	CreateChatCompletion(ctx context.Context, req openai.ChatCompletionRequest) (openai.ChatCompletionResponse, error)
}

var _ Chat = (*Client)(nil)

// Outcomes moves an ended attempt's contact on; *campaign.Service
// implements it.
type Outcomes interface {
	SettleEnded(ctx context.Context, attempt *store.Call, callbackAt time.Time) (campaign.Result, error)
}

var _ Outcomes = (*campaign.Service)(nil)

// Options tune a Service. Zero values take the defaults.
type Options struct {
	// Model is OPENAI_ANALYSIS_MODEL (required).
	Model string
	// Timeout bounds one chat completion (default 60s).
	Timeout time.Duration
	// MaxOutputTokens caps the answer, reasoning included (default 8192):
	// a guard against a runaway answer, far above what one needs.
	MaxOutputTokens int
	// MaxTranscriptLen is the transcript text sent, in characters (default
	// DefaultMaxTranscriptLen).
	MaxTranscriptLen int
	// NotEndedDelay is how long to wait before looking again at an attempt
	// that has not ended yet (default 30s).
	NotEndedDelay time.Duration
	// GiveUpAfter is how long after its creation an attempt that still has
	// not ended is given up on (default 6h). The reaper ends every attempt
	// long before that; past it, something else is wrong and the task is
	// archived rather than deferred forever.
	GiveUpAfter time.Duration
	// Outcomes applies the attempt's outcome to its contact when the call
	// flow has not (nil leaves that to the dispatcher's repair round).
	Outcomes Outcomes
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Defaults for Options.
const (
	DefaultTimeout         = 60 * time.Second
	DefaultMaxOutputTokens = 8192
	DefaultNotEndedDelay   = 30 * time.Second
	DefaultGiveUpAfter     = 6 * time.Hour
)

// Service handles call:analyze. It is safe for concurrent use.
type Service struct {
	// All fields are set by New and never change.
	st   Store
	chat Chat
	opt  Options
}

// New makes a Service.
func New(st Store, chat Chat, o Options) (*Service, error) {
	switch {
	case st == nil:
		return nil, errors.New("analysis: Store is nil")
	case chat == nil:
		return nil, errors.New("analysis: Chat is nil")
	case strings.TrimSpace(o.Model) == "":
		return nil, errors.New("analysis: Options.Model (OPENAI_ANALYSIS_MODEL) is empty")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxOutputTokens <= 0 {
		o.MaxOutputTokens = DefaultMaxOutputTokens
	}
	if o.MaxTranscriptLen <= 0 {
		o.MaxTranscriptLen = DefaultMaxTranscriptLen
	}
	if o.NotEndedDelay <= 0 {
		o.NotEndedDelay = DefaultNotEndedDelay
	}
	if o.GiveUpAfter <= 0 {
		o.GiveUpAfter = DefaultGiveUpAfter
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Service{st: st, chat: chat, opt: o}, nil
}

// Try says which run of the task this is.
type Try struct {
	// N counts from 1.
	N int
	// Last: no retry follows a failure, so a failure is recorded on the
	// call document.
	Last bool
}

// TryFromContext reads the try from asynq's task context. Outside a task
// (a direct call) there is no retry, so it is the last.
func TryFromContext(ctx context.Context, t *asynq.Task) Try {
	retried, ok1 := asynq.GetRetryCount(ctx)
	maxRetry, ok2 := asynq.GetMaxRetry(ctx)
	if !ok1 || !ok2 {
		return Try{N: 1, Last: true}
	}
	// The worker's count: the type's retry budget across requeued copies
	// (internal/worker's retry policy). Where the task's own MaxRetry ends
	// sooner, this may be the last try too (a server without that policy
	// archives it): recording the failure then is early at worst, and a
	// later success overwrites it.
	n, last := worker.Try(ctx, t)
	return Try{N: n, Last: last || retried >= maxRetry}
}

// ProcessTask implements asynq.Handler for call:analyze.
func (s *Service) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p tasks.CallAnalyze
	if err := tasks.Unmarshal(t.Payload(), &p); err != nil {
		return worker.Reject(err)
	}
	return s.Analyze(ctx, p.AttemptID, TryFromContext(ctx, t))
}

// Analyze analyses one ended attempt and stores the result on its call
// document; a re-run overwrites the same fields. Errors follow the
// worker's policy: an unknown attempt or a campaign spec that can never
// work is rejected (archived, with the failure recorded on the call); an
// attempt that has not ended is deferred; anything else is retried, and
// recorded as an analysis failure on the last try.
func (s *Service) Analyze(ctx context.Context, attemptID string, try Try) error {
	// The worker's middleware put the task id and attempt id on the logger.
	log := logging.FromContext(ctx).With(zap.Int("try", try.N), zap.Bool("last_try", try.Last))
	in, err := s.st.GetAnalysisInput(ctx, attemptID)
	if errors.Is(err, store.ErrNotFound) {
		return worker.Reject(fmt.Errorf("analysis: attempt %q does not exist", attemptID))
	}
	if err != nil {
		return fmt.Errorf("analysis: %w", err)
	}
	if !in.Status.Terminal() {
		if age := s.opt.Now().Sub(in.CreatedAt); !in.CreatedAt.IsZero() && age > s.opt.GiveUpAfter {
			return worker.Reject(fmt.Errorf("analysis: attempt %q is still %s %s after it was created", attemptID, in.Status, age.Round(time.Minute)))
		}
		return &NotEndedError{AttemptID: attemptID, Status: in.Status, after: s.opt.NotEndedDelay}
	}

	// The contact's next step does not depend on the model, so it is
	// settled first: a model outage must not hold it up.
	if err := s.settleContact(ctx, log, in); err != nil {
		if !try.Last {
			return err
		}
		// The dispatcher's repair round settles it later.
		log.Error("analysis.outcome_not_applied", zap.Error(err))
	}

	res, err := s.analyze(ctx, in, try)
	if err != nil {
		return s.fail(ctx, log, in, try, err)
	}
	if err := s.st.SaveAnalysisResult(ctx, attemptID, res); err != nil {
		return fmt.Errorf("analysis: %w", err)
	}
	log.Info("analysis.done", zap.String("status", string(res.Analysis.Status)),
		zap.String("disposition", res.Analysis.Disposition), zap.Int("extracted", len(res.Extracted)),
		zap.Int("input_tokens", res.Analysis.InputTokens), zap.Int("output_tokens", res.Analysis.OutputTokens))
	return nil
}

// analyze produces the result for an ended attempt: a trivial one when
// nothing was said, else the model's validated answer.
func (s *Service) analyze(ctx context.Context, in *store.AnalysisInput, try Try) (store.AnalysisResult, error) {
	now := s.opt.Now().UTC()
	if !hasConversation(&in.Call) {
		return store.AnalysisResult{
			Summary:  noConversationSummary(&in.Call),
			Analysis: store.CallAnalysis{Status: store.AnalysisSkipped, Reason: "no conversation", Tries: try.N, At: now},
		}, nil
	}
	spec, err := s.spec(ctx, in)
	if err != nil {
		return store.AnalysisResult{}, err
	}
	schema, err := Schema(spec)
	if err != nil {
		return store.AnalysisResult{}, err
	}
	user, err := UserMessage(&in.Call, s.opt.MaxTranscriptLen)
	if err != nil {
		return store.AnalysisResult{}, fmt.Errorf("analysis: render call: %w", err)
	}
	req := openai.ChatCompletionRequest{
		Model: s.opt.Model,
		Messages: []openai.ChatCompletionMessage{
			{Role: openai.ChatMessageRoleSystem, Content: SystemPrompt(spec)},
			{Role: openai.ChatMessageRoleUser, Content: user},
		},
		MaxCompletionTokens: s.opt.MaxOutputTokens,
		ResponseFormat: &openai.ChatCompletionResponseFormat{
			Type: openai.ChatCompletionResponseFormatTypeJSONSchema,
			JSONSchema: &openai.ChatCompletionResponseFormatJSONSchema{
				Name: SchemaName, Schema: schema, Strict: true,
			},
		},
	}
	if !reasoningModel(s.opt.Model) {
		// go-openai drops a zero temperature (omitempty), which would
		// leave the API's default of 1; this is as close to 0 as float32
		// gets. Reasoning models take no temperature at all.
		req.Temperature = math.SmallestNonzeroFloat32
	}
	cctx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	defer cancel()
	resp, err := s.chat.CreateChatCompletion(cctx, req)
	if err != nil {
		return store.AnalysisResult{}, err
	}
	content, err := answerContent(resp)
	if err != nil {
		return store.AnalysisResult{}, err
	}
	a, err := ParseAnswer(content, spec)
	if err != nil {
		return store.AnalysisResult{}, err
	}
	model := resp.Model
	if model == "" {
		model = s.opt.Model
	}
	return store.AnalysisResult{
		Summary: a.Summary, Extracted: a.Extracted,
		Analysis: store.CallAnalysis{
			Status: store.AnalysisDone, Disposition: a.Disposition, Model: model, Tries: try.N,
			InputTokens: resp.Usage.PromptTokens, OutputTokens: resp.Usage.CompletionTokens, At: now,
		},
	}, nil
}

// spec reads the attempt's campaign spec; inline calls and campaigns that
// were deleted get summary and disposition only.
func (s *Service) spec(ctx context.Context, in *store.AnalysisInput) (store.AnalysisSpec, error) {
	if in.CampaignID.IsZero() {
		return store.AnalysisSpec{}, nil
	}
	spec, err := s.st.GetAnalysisSpec(ctx, in.CampaignID)
	if errors.Is(err, store.ErrNotFound) {
		logging.FromContext(ctx).Warn("analysis.campaign_missing", zap.String("campaign_id", in.CampaignID.Hex()))
		return store.AnalysisSpec{}, nil
	}
	if err != nil {
		return store.AnalysisSpec{}, fmt.Errorf("analysis: %w", err)
	}
	if err := ValidateSpec(spec); err != nil {
		return store.AnalysisSpec{}, fmt.Errorf("campaign %s: %w", in.CampaignID.Hex(), err)
	}
	return spec, nil
}

// answerContent takes the answer out of the response, refusing what is
// not a complete answer.
func answerContent(resp openai.ChatCompletionResponse) (string, error) {
	if len(resp.Choices) == 0 {
		return "", fmt.Errorf("%w: the response has no choices", ErrInvalidAnswer)
	}
	c := resp.Choices[0]
	switch {
	case c.Message.Refusal != "":
		return "", fmt.Errorf("%w: the model refused: %s", ErrInvalidAnswer, truncate(c.Message.Refusal, 200))
	case c.FinishReason == openai.FinishReasonLength:
		return "", fmt.Errorf("%w: the answer was cut off at the token limit", ErrInvalidAnswer)
	case c.FinishReason == openai.FinishReasonContentFilter:
		return "", fmt.Errorf("%w: the answer was withheld by the content filter", ErrInvalidAnswer)
	case strings.TrimSpace(c.Message.Content) == "":
		return "", fmt.Errorf("%w: the answer is empty", ErrInvalidAnswer)
	}
	return c.Message.Content, nil
}

// maxErrorLen bounds the failure reason stored on the call.
const maxErrorLen = 1000

// fail decides what a failed analysis means for the task, recording it on
// the call when no retry follows.
func (s *Service) fail(ctx context.Context, log *zap.Logger, in *store.AnalysisInput, try Try, cause error) error {
	permanent := errors.Is(cause, ErrInvalidSpec)
	if ctx.Err() != nil || (!try.Last && !permanent) {
		// Shutting down (asynq puts the task back), or a retry follows.
		log.Warn("analysis.try_failed", zap.Error(cause))
		return fmt.Errorf("analysis of attempt %q: %w", in.ID, cause)
	}
	rec := store.CallAnalysis{
		Status: store.AnalysisFailed, Error: truncate(cause.Error(), maxErrorLen),
		Model: s.opt.Model, Tries: try.N, At: s.opt.Now().UTC(),
	}
	wrote, err := s.st.RecordAnalysisFailure(ctx, in.ID, rec)
	if err != nil {
		return fmt.Errorf("analysis of attempt %q failed (%w), and recording that failed too: %w", in.ID, cause, err)
	}
	log.Error("analysis.failed", zap.Bool("recorded", wrote), zap.Error(cause))
	err = fmt.Errorf("analysis of attempt %q: %w", in.ID, cause)
	if permanent {
		return worker.Reject(err)
	}
	return err
}

// settleContact moves the attempt's contact on (campaign.SettleEnded,
// which leaves a contact that already moved as it is).
func (s *Service) settleContact(ctx context.Context, log *zap.Logger, in *store.AnalysisInput) error {
	if s.opt.Outcomes == nil || in.ContactID.IsZero() {
		return nil
	}
	res, err := s.opt.Outcomes.SettleEnded(ctx, &in.Call, in.CallbackAt)
	if errors.Is(err, store.ErrNotFound) {
		log.Warn("analysis.contact_missing", zap.String("contact_id", in.ContactID.Hex()))
		return nil
	}
	if err != nil {
		return fmt.Errorf("analysis: %w", err)
	}
	log.Info("analysis.outcome_applied", zap.String("outcome", string(campaign.OutcomeOf(&in.Call))), zap.Bool("applied", res.Applied),
		zap.String("contact_status", string(res.Status)))
	return nil
}

// reasoningModel reports models that refuse a temperature (go-openai
// checks the same prefixes).
func reasoningModel(model string) bool {
	for _, p := range []string{"o1", "o3", "o4", "gpt-5", "gpt-6"} {
		if strings.HasPrefix(model, p) {
			return true
		}
	}
	return false
}

// NotEndedError defers the analysis of an attempt that has not ended yet:
// the call flow enqueues the analysis only after the end is written, so
// this is a duplicate or early delivery, and it waits without using up a
// retry (the worker does not count deferrals).
type NotEndedError struct {
	AttemptID string
	Status    store.CallStatus
	after     time.Duration
}

func (e *NotEndedError) Error() string {
	return fmt.Sprintf("analysis: attempt %q is still %s; looking again in %s", e.AttemptID, e.Status, e.after)
}

// Deferred tells the worker this is a postponement, not a failure.
func (e *NotEndedError) Deferred() bool { return true }

// RetryAfter is when to look again.
func (e *NotEndedError) RetryAfter() time.Duration { return e.after }
