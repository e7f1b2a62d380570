package campaign

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docshield/voice-worker/internal/phone"
	"github.com/docshield/voice-worker/internal/store"
	"go.uber.org/zap"
)

// Result is what ApplyOutcome decided and whether it was recorded.
type Result struct {
	Decision
	// Applied is false when the contact had already moved on (a later
	// attempt, or a final status), so nothing was written.
	Applied bool
}

// ApplyOutcome records how an attempt ended on its contact, per the
// campaign's retry policy: the contact becomes completed, do_not_call or
// exhausted, or pending again with its next attempt time (the backoff, or
// callbackAt when the callee asked for a callback; never outside calling
// hours). Call it once the attempt has ended, with outcome one of the
// Outcome values. Calling it again for the same attempt writes the same
// result, so a retried task may call it freely. Attempts without a contact
// (inline calls) have nothing to apply.
//
// Opted-out callees are added to the do-not-call list here too, in case the
// call flow's OptOut did not happen.
func (s *Service) ApplyOutcome(ctx context.Context, attempt *store.Call, outcome string, callbackAt time.Time) (Result, error) {
	if attempt == nil {
		return Result{}, errors.New("campaign: apply outcome: attempt is nil")
	}
	if attempt.ContactID.IsZero() {
		return Result{}, nil
	}
	o, err := ParseOutcome(outcome)
	if err != nil {
		return Result{}, fmt.Errorf("campaign: apply outcome of attempt %s: %w", attempt.ID, err)
	}
	c, err := s.store.GetCampaign(ctx, attempt.CampaignID)
	if err != nil {
		return Result{}, fmt.Errorf("campaign: apply outcome of attempt %s: %w", attempt.ID, err)
	}
	p, err := planFor(c)
	if err != nil {
		return Result{}, fmt.Errorf("campaign: apply outcome of attempt %s: %w", attempt.ID, err)
	}
	contact, err := s.store.GetContact(ctx, attempt.ContactID)
	if err != nil {
		return Result{}, fmt.Errorf("campaign: apply outcome of attempt %s: %w", attempt.ID, err)
	}
	return s.applyOutcome(ctx, p, contact, attempt, o, callbackAt, s.now())
}

// SettleEnded moves an ended attempt's contact on by the attempt's own
// outcome (OutcomeOf), unless the contact already moved past the attempt
// (the call flow, an earlier try or the dispatcher's repair round did it):
// ApplyOutcome is idempotent only given the same arguments, so a contact
// that moved is left as it is. callbackAt is a callback the callee asked
// for. Inline attempts (no contact) have nothing to settle.
func (s *Service) SettleEnded(ctx context.Context, a *store.Call, callbackAt time.Time) (Result, error) {
	if a == nil || a.ContactID.IsZero() {
		return Result{}, nil
	}
	c, err := s.store.GetContact(ctx, a.ContactID)
	if err != nil {
		return Result{}, fmt.Errorf("campaign: settle attempt %s: %w", a.ID, err)
	}
	if c.Attempts >= a.Attempt || (c.Status != store.ContactPending && c.Status != store.ContactCalling) {
		return Result{}, nil
	}
	return s.ApplyOutcome(ctx, a, string(OutcomeOf(a)), callbackAt)
}

func (s *Service) applyOutcome(ctx context.Context, p plan, contact *store.Contact, a *store.Call, o Outcome, callbackAt, now time.Time) (Result, error) {
	if a.Attempt <= 0 {
		return Result{}, fmt.Errorf("campaign: apply outcome of attempt %s: Call.Attempt %d is not positive", a.ID, a.Attempt)
	}
	// An outcome arriving after the contact's next attempt was written
	// (say, a re-run analysis) is history: the contact has moved on.
	later, err := s.store.AttemptSummaries(ctx, []string{AttemptID(contact.ID, a.Attempt+1)})
	if err != nil {
		return Result{}, err
	}
	if len(later) > 0 {
		s.log.Info("campaign.outcome_stale", zap.String("campaign_id", p.c.ID.Hex()), zap.String("attempt_id", a.ID))
		return Result{}, nil
	}
	dialed, err := s.attemptsUsed(ctx, contact)
	if err != nil {
		return Result{}, err
	}
	ended := a.EndedAt
	if ended.IsZero() {
		ended = now
	}
	var d Decision
	if w, werr := p.cal.ContactWindow(contact.TimeZone, contact.Phone); werr != nil && o != OutcomeOptedOut {
		// Its calling hours cannot be known, so it can never be called.
		d = Decision{Status: store.ContactExhausted, Reason: werr.Error()}
	} else {
		d = p.policy.Decide(Attempt{Outcome: o, Dialed: dialed, EndedAt: ended, CallbackAt: callbackAt}, w)
	}
	if o == OutcomeOptedOut {
		if err := s.addDoNotCall(ctx, contact.Phone, "campaign:outcome"); err != nil {
			return Result{}, err
		}
	}
	applied, err := s.store.SetContactOutcome(ctx, contact.ID, store.ContactOutcome{
		Status: d.Status, Attempt: a.Attempt, AttemptID: a.ID, NextAttemptAt: d.NextAttemptAt, LastOutcome: string(o),
	}, now)
	if err != nil {
		return Result{}, err
	}
	fields := []zap.Field{
		zap.String("campaign_id", p.c.ID.Hex()), zap.String("attempt_id", a.ID), zap.String("outcome", string(o)),
		zap.String("contact_status", string(d.Status)), zap.String("reason", d.Reason), zap.Bool("applied", applied),
	}
	if !d.NextAttemptAt.IsZero() {
		fields = append(fields, zap.Time("next_attempt_at", d.NextAttemptAt))
	}
	s.log.Info("campaign.outcome", fields...)
	return Result{Decision: d, Applied: applied}, nil
}

// Errors from CheckDial that mean "do not dial this attempt". Test with
// errors.Is(err, ErrMustNotDial); any other error is a failure to check,
// and the call must not be dialed either, but may be tried again later.
var (
	ErrMustNotDial         = errors.New("must not dial")
	ErrDoNotCall           = fmt.Errorf("%w: the number is on the do-not-call list", ErrMustNotDial)
	ErrCampaignNotRunning  = fmt.Errorf("%w: the campaign is not running", ErrMustNotDial)
	ErrOutsideCallingHours = fmt.Errorf("%w: outside calling hours", ErrMustNotDial)
)

// CheckDial is the last check before an attempt is dialed, made by the
// call flow right before it places the call: the number is not on the
// do-not-call list (it may have been added since dispatch), and it is
// inside calling hours where it rings. For an inline call these are
// LegalHours in its time_zone, or in every zone its number may ring in
// (LegalWindow); for a campaign attempt, the campaign is still running and
// the contact is inside its ContactWindow (the task may have waited in a
// backed-up queue). A number whose local time cannot be known is never
// dialed.
//
// On an ErrMustNotDial error the call flow ends the attempt as cancelled
// without dialing and calls ApplyOutcome with "cancelled", which does not
// use up one of the contact's attempts.
func (s *Service) CheckDial(ctx context.Context, a *store.Call) error {
	if a == nil {
		return errors.New("campaign: check dial: attempt is nil")
	}
	number := a.Phone
	var contact *store.Contact
	if !a.ContactID.IsZero() {
		var err error
		if contact, err = s.store.GetContact(ctx, a.ContactID); err != nil {
			return fmt.Errorf("campaign: check dial of attempt %s: %w", a.ID, err)
		}
		number = contact.Phone
	}
	listed, err := s.store.IsDoNotCall(ctx, number)
	if err != nil {
		return fmt.Errorf("campaign: check dial of attempt %s: %w", a.ID, err)
	}
	if listed {
		return fmt.Errorf("attempt %s: %w", a.ID, ErrDoNotCall)
	}
	w, err := s.dialWindow(ctx, a, contact)
	if err != nil {
		return err
	}
	if why := w.Closed(s.now()); why != "" {
		return fmt.Errorf("attempt %s: %w: %s", a.ID, ErrOutsideCallingHours, why)
	}
	return nil
}

// dialWindow is the window an attempt may be dialed in: the law's hours
// for an inline call, the contact's window for a running campaign's.
func (s *Service) dialWindow(ctx context.Context, a *store.Call, contact *store.Contact) (Window, error) {
	if a.CampaignID.IsZero() {
		w, err := LegalWindow(a.Phone, a.TimeZone)
		if err != nil {
			return Window{}, fmt.Errorf("attempt %s: %w: %w", a.ID, ErrMustNotDial, err)
		}
		return w, nil
	}
	c, err := s.store.GetCampaign(ctx, a.CampaignID)
	if err != nil {
		return Window{}, fmt.Errorf("campaign: check dial of attempt %s: %w", a.ID, err)
	}
	if c.Status != store.CampaignRunning {
		return Window{}, fmt.Errorf("attempt %s: %w: it is %s", a.ID, ErrCampaignNotRunning, c.Status)
	}
	p, err := planFor(c)
	if err != nil {
		return Window{}, fmt.Errorf("attempt %s: %w: %w", a.ID, ErrMustNotDial, err)
	}
	if contact == nil {
		return Window{}, fmt.Errorf("attempt %s: %w: campaign attempt has no contact", a.ID, ErrMustNotDial)
	}
	w, err := p.cal.ContactWindow(contact.TimeZone, contact.Phone)
	if err != nil {
		return Window{}, fmt.Errorf("attempt %s: %w: %w", a.ID, ErrMustNotDial, err)
	}
	return w, nil
}

// attemptsUsed reads a contact's attempt documents and applies
// AttemptsUsed.
func (s *Service) attemptsUsed(ctx context.Context, c *store.Contact) (int, error) {
	marks, err := s.store.ContactAttempts(ctx, c.ID)
	if err != nil {
		return 0, err
	}
	return AttemptsUsed(c.Attempts, marks), nil
}

// OptOut puts phone on the do-not-call list at once, for the agent's
// opt_out tool: the number is never dialed again, by any campaign. source
// says who asked (default "agent:opt_out").
func (s *Service) OptOut(ctx context.Context, phone, source string) error {
	if source == "" {
		source = "agent:opt_out"
	}
	return s.addDoNotCall(ctx, phone, source)
}

func (s *Service) addDoNotCall(ctx context.Context, number, source string) error {
	if !phone.Valid(number) {
		return errors.New("campaign: opt out: phone is not E.164")
	}
	err := s.store.AddDoNotCall(ctx, store.DoNotCall{
		Phone: number, Reason: "callee asked not to be called", Source: source, CreatedAt: s.now(),
	})
	if err != nil {
		return fmt.Errorf("campaign: opt out: %w", err)
	}
	return nil
}
