package campaign

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/docshield/voice-worker/internal/phone"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/worker"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap"
)

// RoundReport says what one dispatch round of one campaign did.
type RoundReport struct {
	CampaignID string `json:"campaign_id"`
	// Skipped says why no round ran; empty when one did.
	Skipped string `json:"skipped,omitempty"`
	// Started: the round moved the campaign from scheduled to running.
	Started bool `json:"started,omitempty"`
	// Live is the number of attempts queued or in a call when the round
	// looked, before dispatching.
	Live int `json:"live"`
	// Dispatched attempts were written and enqueued by this round.
	Dispatched int `json:"dispatched"`
	// Contended attempts had already been written by another dispatcher.
	Contended int `json:"contended,omitempty"`
	// DoNotCall contacts were found on the do-not-call list and finished.
	DoNotCall int `json:"do_not_call,omitempty"`
	// OutsideHours contacts were due in their own zone but not inside
	// 08:00–21:00 in every zone their number may ring in; they wait.
	OutsideHours int `json:"outside_hours,omitempty"`
	// Requeued attempts had their lost task enqueued again; Expired ones
	// were cancelled after waiting too long; Settled contacts had the
	// outcome of an ended attempt applied by the round, because nobody
	// else had.
	Requeued  int  `json:"requeued,omitempty"`
	Expired   int  `json:"expired,omitempty"`
	Settled   int  `json:"settled,omitempty"`
	Completed bool `json:"completed,omitempty"`
	// Mistyped counts contacts the round could not dispatch because of a
	// field of the wrong type or value (see store.Mistyped).
	Mistyped store.Mistyped `json:"mistyped,omitzero"`
}

// roundKeep is how long round records are kept; rounds older than one
// round are never contended, the rest is for operators' curiosity.
const roundKeep = time.Hour

// settleBatch bounds the repair work of one round.
const settleBatch = 200

// Round runs one dispatch round for a campaign, unless another worker
// already runs this round (then Skipped says so). A round:
//   - starts a scheduled campaign whose window has opened;
//   - re-enqueues attempts whose task was lost, cancels attempts queued for
//     too long, and applies the outcome of ended attempts nobody applied;
//   - writes a queued attempt for each due contact inside its calling hours
//     and not on the do-not-call list, up to the concurrency limit, and
//     enqueues call:outbound for it with task id = attempt id;
//   - completes the campaign once every contact is final.
//
// Paused, cancelled, completed and draft campaigns are left alone.
func (s *Service) Round(ctx context.Context, id bson.ObjectID) (RoundReport, error) {
	now := s.now()
	r := RoundReport{CampaignID: id.Hex()}
	c, err := s.store.GetCampaign(ctx, id)
	if err != nil {
		return r, err
	}
	switch c.Status {
	case store.CampaignRunning:
	case store.CampaignScheduled:
		if now.Before(c.Schedule.WindowStart) {
			r.Skipped = "scheduled to start at " + c.Schedule.WindowStart.UTC().Format(time.RFC3339)
			return r, nil
		}
	default:
		r.Skipped = "campaign is " + string(c.Status)
		return r, nil
	}
	p, err := planFor(c)
	if err != nil {
		return r, err
	}

	// The round ledger is the first line against double dispatch: one
	// worker per campaign per round. The attempt id is the second, the
	// call's claim the last.
	n := roundOf(now, s.opt.Interval)
	won, err := s.store.ClaimDispatchRound(ctx, store.DispatchRound{
		ID: fmt.Sprintf("%s-%d", id.Hex(), n), CampaignID: id, Owner: s.opt.Owner, StartedAt: now,
	})
	if err != nil {
		return r, err
	}
	if !won {
		r.Skipped = "another worker has this round"
		return r, nil
	}
	// Finish within the round, so this round never runs alongside the
	// next one, which may be another worker's.
	ctx, cancel := context.WithTimeout(ctx, roundStart(n+1, s.opt.Interval).Sub(now))
	defer cancel()

	if c.Status == store.CampaignScheduled {
		if _, err := s.store.SetCampaignStatus(ctx, id, []store.CampaignStatus{store.CampaignScheduled}, store.CampaignRunning, now); err != nil {
			if errors.Is(err, store.ErrInvalidTransition) {
				r.Skipped = "campaign changed status: " + err.Error()
				return r, nil
			}
			return r, err
		}
		r.Started = true
		s.log.Info("campaign.started", zap.String("campaign_id", id.Hex()))
	}
	err = s.dispatch(ctx, p, now, &r)
	if err == nil {
		s.refreshStats(ctx, id, now, r.Completed)
	}
	if perr := s.store.PruneDispatchRounds(ctx, id, now.Add(-roundKeep)); perr != nil {
		s.log.Warn("campaign.prune_rounds_failed", zap.String("campaign_id", id.Hex()), zap.Error(perr))
	}
	return r, err
}

// dispatch is a round's work once the round is ours.
func (s *Service) dispatch(ctx context.Context, p plan, now time.Time, r *RoundReport) error {
	id := p.c.ID
	if err := s.repairQueued(ctx, p, now, r); err != nil {
		return err
	}
	live, err := s.store.LiveAttemptContacts(ctx, id)
	if err != nil {
		return err
	}
	r.Live = len(live)
	if p.cal.Ended(now) {
		return s.finishClosed(ctx, p, now, r)
	}
	if headroom := p.limit - len(live); headroom > 0 {
		if err := s.dispatchDue(ctx, p, now, headroom, live, r); err != nil {
			return err
		}
	}
	if r.Live > 0 || r.Dispatched > 0 || r.Contended > 0 {
		return nil
	}
	open, err := s.store.CountContacts(ctx, id, store.ContactPending, store.ContactCalling)
	if err != nil || open > 0 {
		return err
	}
	// A campaign is written before its contacts (docs/CAMPAIGNS.md):
	// without any, it is waiting for them, not finished.
	all, err := s.store.CountContacts(ctx, id)
	if err != nil || all == 0 {
		return err
	}
	return s.complete(ctx, id, now, r)
}

// dispatchDue writes and enqueues attempts for due contacts without a live
// attempt, walking them in _id order, until headroom attempts were written
// (by us, or live ones by a concurrent dispatcher: both use up the
// campaign's concurrency).
func (s *Service) dispatchDue(ctx context.Context, p plan, now time.Time, headroom int, live []bson.ObjectID, r *RoundReport) error {
	zones, noZone, err := s.openZones(ctx, p, now, r)
	if err != nil || (len(zones) == 0 && !noZone) {
		return err
	}
	var after bson.ObjectID
	for page := 0; headroom > 0; page++ {
		if page > 0 {
			// A pause or cancel takes effect between pages, not only at
			// the next round.
			c, err := s.store.GetCampaign(ctx, p.c.ID)
			if err != nil {
				return err
			}
			if c.Status != store.CampaignRunning {
				return nil
			}
		}
		due, err := s.store.DueContacts(ctx, store.DueQuery{
			CampaignID: p.c.ID, Now: now, Zones: zones, IncludeNoZone: noZone, Exclude: live,
			AfterID: after, Limit: min(headroom, s.opt.PageSize),
		})
		if err != nil {
			return err
		}
		r.Mistyped.Undecodable += len(due.Mistyped)
		if len(due.Contacts) > 0 {
			used, err := s.dispatchBatch(ctx, p, now, due.Contacts, headroom, r)
			if err != nil {
				return err
			}
			headroom -= used
		}
		if due.Last.IsZero() || due.Last == after {
			return nil // an empty page, or one without an _id to page on
		}
		after = due.Last
	}
	return nil
}

// openZones lists the time zones of pending contacts that are inside
// their calling hours now, and whether contacts without a zone (using the
// campaign's default) are. The same pass counts the contacts the round
// cannot see because of a mistyped field, into r.
func (s *Service) openZones(ctx context.Context, p plan, now time.Time, r *RoundReport) (open []string, noZone bool, err error) {
	sv, err := s.store.SurveyContacts(ctx, p.c.ID)
	if err != nil {
		return nil, false, err
	}
	undecodable := r.Mistyped.Undecodable
	r.Mistyped = sv.Mistyped
	r.Mistyped.Undecodable = undecodable
	for _, name := range sv.Zones {
		loc, err := LoadZone(name)
		if err != nil {
			// Written by the backend without validation: never dialed,
			// since its calling hours cannot be known.
			s.log.Warn("campaign.contact_time_zone_invalid", zap.String("campaign_id", p.c.ID.Hex()), zap.Error(err))
			continue
		}
		if p.cal.Open(now, loc) {
			open = append(open, name)
		}
	}
	return open, p.cal.Open(now, p.cal.DefaultZone), nil
}

// dispatchBatch handles one page of due contacts and returns how much of
// the headroom it used.
func (s *Service) dispatchBatch(ctx context.Context, p plan, now time.Time, batch []store.Contact, headroom int, r *RoundReport) (int, error) {
	phones := make([]string, 0, len(batch))
	for _, c := range batch {
		if phone.Valid(c.Phone) {
			phones = append(phones, c.Phone)
		}
	}
	listed, err := s.store.ListedPhones(ctx, phones)
	if err != nil {
		return 0, err
	}
	var dnc, badPhone, spent, noZone, noHours []bson.ObjectID
	var attempts []*store.Call
	for i := range batch {
		c := &batch[i]
		switch {
		case !phone.Valid(c.Phone):
			badPhone = append(badPhone, c.ID)
		case listed[c.Phone]:
			dnc = append(dnc, c.ID)
		case len(attempts) < headroom:
			// The query picked the contact by its own zone; the law's
			// hours where the number rings are checked here.
			w, err := p.cal.ContactWindow(c.TimeZone, c.Phone)
			if err != nil {
				noZone = append(noZone, c.ID)
				continue
			}
			if !w.Open(now) {
				if _, ok := w.unbounded().NextOpen(now); !ok {
					noHours = append(noHours, c.ID)
				} else {
					r.OutsideHours++
				}
				continue
			}
			n := c.Attempts + 1
			if n > p.policy.MaxAttempts {
				// The counter alone does not settle it: attempts
				// cancelled before dialing do not count. Rare, so a
				// query.
				used, err := s.attemptsUsed(ctx, c)
				if err != nil {
					return 0, err
				}
				if used >= p.policy.MaxAttempts {
					spent = append(spent, c.ID)
					continue
				}
			}
			attempts = append(attempts, &store.Call{
				ID: AttemptID(c.ID, n), CampaignID: p.c.ID, ContactID: c.ID, Attempt: n,
				Status: store.CallQueued, CreatedAt: now, QueuedAt: now,
			})
		}
	}
	for _, f := range []struct {
		ids     []bson.ObjectID
		status  store.ContactStatus
		outcome string
	}{
		{dnc, store.ContactDoNotCall, "do_not_call"},
		{badPhone, store.ContactExhausted, "invalid_phone"},
		{spent, store.ContactExhausted, "max_attempts"},
		{noZone, store.ContactExhausted, "no_time_zone"},
		{noHours, store.ContactExhausted, "no_calling_hours"},
	} {
		if err := s.store.FinishPendingContacts(ctx, f.ids, f.status, f.outcome, now); err != nil {
			return 0, err
		}
	}
	r.DoNotCall += len(dnc)

	dups, err := s.store.CreateAttempts(ctx, attempts)
	if err != nil {
		return 0, err
	}
	used, err := s.sortOutExisting(ctx, p, now, attempts, dups, r)
	if err != nil {
		return 0, err
	}
	created := make([]string, 0, len(attempts)-len(dups))
	for i, a := range attempts {
		if !dups[i] {
			created = append(created, a.ID)
		}
	}
	// Counted as dispatched even if enqueueing fails below: the attempts
	// exist and hold their slots, and a later round enqueues them again.
	r.Dispatched += len(created)
	used += len(created)
	return used, s.enqueueAll(ctx, created)
}

// enqueueWorkers bounds concurrent enqueues: one enqueue is one Redis round
// trip, so a few in flight at once make a 10,000-contact round take about a
// second instead of several.
const enqueueWorkers = 8

// enqueueAll enqueues the call:outbound tasks of attempts, a few at a time,
// and returns the first error; it waits for every enqueue it started.
func (s *Service) enqueueAll(ctx context.Context, attemptIDs []string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ids := make(chan string)
	errs := make(chan error, enqueueWorkers)
	var wg sync.WaitGroup
	for range min(enqueueWorkers, len(attemptIDs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				if _, err := s.enqueue(ctx, id); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
	func() {
		defer close(ids)
		for _, id := range attemptIDs {
			select {
			case ids <- id:
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	return <-errs // nil when no worker failed
}

// sortOutExisting looks at the attempts that existed already. A live one
// was written by a concurrent dispatcher since this round counted live
// attempts, and uses up headroom like our own. An ended one belongs to a
// call whose outcome has not been applied to its contact yet: normally the
// call flow does that at once; once SettleAfter has passed, the round
// applies it itself. It returns the headroom used.
func (s *Service) sortOutExisting(ctx context.Context, p plan, now time.Time, attempts []*store.Call, dups map[int]bool, r *RoundReport) (int, error) {
	if len(dups) == 0 {
		return 0, nil
	}
	ids := make([]string, 0, len(dups))
	for i := range dups {
		ids = append(ids, attempts[i].ID)
	}
	existing, err := s.store.AttemptSummaries(ctx, ids)
	if err != nil {
		return 0, err
	}
	used := 0
	for i := range existing {
		a := &existing[i]
		switch {
		case !a.Status.Terminal():
			r.Contended++
			used++
		case !a.EndedAt.After(now.Add(-s.opt.SettleAfter)):
			if err := s.settleContact(ctx, p, a, OutcomeOf(a), now); err != nil {
				return used, err
			}
			r.Settled++
			s.log.Warn("campaign.settled", zap.String("campaign_id", p.c.ID.Hex()), zap.String("attempt_id", a.ID),
				zap.String("outcome", string(OutcomeOf(a))))
		}
	}
	return used, nil
}

// enqueue puts the attempt's call:outbound task on the queue, with the
// attempt id as task id. It reports false when the task was already there
// and will run. A task that is there but archived (its retries spent
// before it claimed the attempt: MongoDB down for minutes, say) is put
// back to pending, and reported true: asynq refuses its id to a new
// enqueue, and the attempt, still queued, would otherwise hold its
// campaign's slot and its contact until ExpireQueuedAfter.
func (s *Service) enqueue(ctx context.Context, attemptID string) (bool, error) {
	if s.queue == nil {
		return false, errors.New("campaign: no queue to enqueue call:outbound on")
	}
	p := tasks.CallOutbound{AttemptID: attemptID}
	_, err := s.queue.Enqueue(ctx, p, asynq.TaskID(attemptID))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		ran, err := s.queue.RunArchived(p.Queue(), attemptID)
		if err != nil {
			return false, fmt.Errorf("campaign: attempt %s: %w", attemptID, err)
		}
		if ran {
			s.log.Warn("campaign.task_revived", zap.String("attempt_id", attemptID),
				zap.String("why", "its call task was archived while the attempt was still queued"))
		}
		return ran, nil
	}
	if err != nil {
		return false, fmt.Errorf("campaign: enqueue call for attempt %s: %w", attemptID, err)
	}
	return true, nil
}

// repairQueued handles attempts that stayed queued: after RequeueAfter
// their task is enqueued again, in case a crash lost it (the task id makes
// that a no-op when it exists); after ExpireQueuedAfter they are cancelled
// undialed, so a lost task cannot hold a concurrency slot forever, and the
// contact is due again.
func (s *Service) repairQueued(ctx context.Context, p plan, now time.Time, r *RoundReport) error {
	queued, err := s.store.QueuedAttempts(ctx, p.c.ID, now.Add(-s.opt.RequeueAfter), settleBatch)
	if err != nil {
		return err
	}
	for _, q := range queued {
		if q.QueuedAt.Before(now.Add(-s.opt.ExpireQueuedAfter)) {
			ok, err := s.store.CancelQueuedAttempt(ctx, q.ID,
				fmt.Sprintf("queued for more than %s without being dialed", s.opt.ExpireQueuedAfter), now)
			if err != nil {
				return err
			}
			if ok {
				r.Expired++
				q.Status, q.EndedAt = store.CallCancelled, now
				if err := s.settleContact(ctx, p, &q, OutcomeCancelled, now); err != nil {
					return err
				}
			}
			continue
		}
		enqueued, err := s.enqueue(ctx, q.ID)
		if err != nil {
			return err
		}
		if enqueued {
			r.Requeued++
			s.log.Warn("campaign.requeued", zap.String("campaign_id", p.c.ID.Hex()), zap.String("attempt_id", q.ID))
		}
	}
	return nil
}

func (s *Service) settleContact(ctx context.Context, p plan, a *store.Call, o Outcome, now time.Time) error {
	contact, err := s.store.GetContact(ctx, a.ContactID)
	if err != nil {
		return err
	}
	_, err = s.applyOutcome(ctx, p, contact, a, o, time.Time{}, now)
	return err
}

// finishClosed handles a campaign whose window has closed: once no call is
// live and SettleAfter has passed (time for the last outcomes to be
// applied), contacts never reached become exhausted and the campaign
// completes.
func (s *Service) finishClosed(ctx context.Context, p plan, now time.Time, r *RoundReport) error {
	if r.Live > 0 || now.Before(p.cal.End.Add(s.opt.SettleAfter)) {
		return nil
	}
	if _, err := s.store.ExhaustPendingContacts(ctx, p.c.ID, now); err != nil {
		return err
	}
	return s.complete(ctx, p.c.ID, now, r)
}

func (s *Service) complete(ctx context.Context, id bson.ObjectID, now time.Time, r *RoundReport) error {
	_, err := s.store.SetCampaignStatus(ctx, id, []store.CampaignStatus{store.CampaignRunning}, store.CampaignCompleted, now)
	if errors.Is(err, store.ErrInvalidTransition) {
		return nil // paused or cancelled meanwhile: the operator's word stands
	}
	if err != nil {
		return err
	}
	// A contact written between the round's count and the status change
	// would never be called in a completed campaign: look once more.
	open, err := s.store.CountContacts(ctx, id, store.ContactPending, store.ContactCalling)
	if err != nil {
		return err
	}
	if open > 0 {
		if _, err := s.store.SetCampaignStatus(ctx, id, []store.CampaignStatus{store.CampaignCompleted}, store.CampaignRunning, now); err != nil {
			return err
		}
		s.log.Warn("campaign.reopened", zap.String("campaign_id", id.Hex()), zap.Int64("pending", open))
		return nil
	}
	r.Completed = true
	s.log.Info("campaign.completed", zap.String("campaign_id", id.Hex()))
	return nil
}

// ProcessTask handles campaign:dispatch: one round for the campaign, now.
// A backend enqueues it to dispatch a campaign without waiting for the
// periodic round; if this round already ran, there is nothing to do.
func (s *Service) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p tasks.CampaignDispatch
	if err := tasks.Unmarshal(t.Payload(), &p); err != nil {
		return worker.Reject(err)
	}
	id, err := bson.ObjectIDFromHex(p.CampaignID)
	if err != nil {
		return worker.Reject(fmt.Errorf("campaign_id: %w", err))
	}
	r, err := s.Round(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return worker.Reject(err)
	}
	if err != nil {
		return err
	}
	s.logRound(r)
	return nil
}

func (s *Service) logRound(r RoundReport) {
	if r.Skipped != "" {
		s.log.Debug("campaign.round_skipped", zap.String("campaign_id", r.CampaignID), zap.String("reason", r.Skipped))
		return
	}
	if m := r.Mistyped; m.Total() > 0 {
		// Once per round, counts only: the contacts themselves are listed
		// by `worker campaign check`, which names each wrong field.
		s.log.Warn("campaign.contacts_mistyped", zap.String("campaign_id", r.CampaignID), zap.Int("contacts", m.Total()),
			zap.Int("campaign_id_string", m.CampaignIDString), zap.Int("unknown_status", m.UnknownStatus),
			zap.Int("next_attempt_at", m.NextAttemptAt), zap.Int("time_zone", m.TimeZone),
			zap.Int("undecodable", m.Undecodable), zap.String("hint", "worker campaign check "+r.CampaignID))
	}
	s.log.Info("campaign.round", zap.String("campaign_id", r.CampaignID), zap.Int("live", r.Live),
		zap.Int("dispatched", r.Dispatched), zap.Int("contended", r.Contended), zap.Int("do_not_call", r.DoNotCall),
		zap.Int("outside_hours", r.OutsideHours),
		zap.Int("requeued", r.Requeued), zap.Int("expired", r.Expired), zap.Int("settled", r.Settled),
		zap.Bool("completed", r.Completed))
}
