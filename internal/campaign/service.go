package campaign

import (
	"context"
	"strconv"
	"time"

	"github.com/docshield/voice-worker/internal/queue"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap"
)

// Store is the part of MongoDB campaigns use; *store.Store implements it,
// and tests wrap it to inject faults.
type Store interface {
	GetCampaign(ctx context.Context, id bson.ObjectID) (*store.Campaign, error)
	CampaignIDsByStatus(ctx context.Context, statuses ...store.CampaignStatus) ([]bson.ObjectID, error)
	SetCampaignStatus(ctx context.Context, id bson.ObjectID, from []store.CampaignStatus, to store.CampaignStatus, now time.Time) (store.CampaignStatus, error)
	ClaimDispatchRound(ctx context.Context, r store.DispatchRound) (bool, error)
	PruneDispatchRounds(ctx context.Context, campaignID bson.ObjectID, before time.Time) error

	InsertContacts(ctx context.Context, cs []store.Contact) (inserted, duplicates int, err error)
	GetContact(ctx context.Context, id bson.ObjectID) (*store.Contact, error)
	SurveyContacts(ctx context.Context, campaignID bson.ObjectID) (store.ContactSurvey, error)
	DueContacts(ctx context.Context, q store.DueQuery) (store.DuePage, error)
	CountContacts(ctx context.Context, campaignID bson.ObjectID, statuses ...store.ContactStatus) (int64, error)
	FinishPendingContacts(ctx context.Context, ids []bson.ObjectID, status store.ContactStatus, lastOutcome string, now time.Time) error
	ExhaustPendingContacts(ctx context.Context, campaignID bson.ObjectID, now time.Time) (int64, error)
	SetContactOutcome(ctx context.Context, id bson.ObjectID, o store.ContactOutcome, now time.Time) (bool, error)

	CreateAttempts(ctx context.Context, cs []*store.Call) (map[int]bool, error)
	LiveAttemptContacts(ctx context.Context, campaignID bson.ObjectID) ([]bson.ObjectID, error)
	QueuedAttempts(ctx context.Context, campaignID bson.ObjectID, queuedBefore time.Time, limit int) ([]store.Call, error)
	AttemptSummaries(ctx context.Context, ids []string) ([]store.Call, error)
	ContactAttempts(ctx context.Context, contactID bson.ObjectID) ([]store.AttemptMark, error)
	CancelQueuedAttempt(ctx context.Context, attemptID, reason string, now time.Time) (bool, error)

	ListedPhones(ctx context.Context, phones []string) (map[string]bool, error)
	IsDoNotCall(ctx context.Context, phone string) (bool, error)
	AddDoNotCall(ctx context.Context, d store.DoNotCall) error

	CountCampaign(ctx context.Context, campaignID bson.ObjectID) (store.StatsSnapshot, error)
	GetCampaignStats(ctx context.Context, campaignID bson.ObjectID) (store.StatsSnapshot, error)
	GetAgentCallSettings(ctx context.Context, campaignID bson.ObjectID) (store.AgentCallSettings, error)
}

var _ Store = (*store.Store)(nil)

// Enqueuer puts tasks on the queue; *queue.Client implements it.
// RunArchived puts an archived task back to pending (false when it is
// absent or in any other state): the repair's way past a call task whose
// retries ran out before it claimed its attempt.
type Enqueuer interface {
	Enqueue(ctx context.Context, p tasks.Payload, opts ...asynq.Option) (*asynq.TaskInfo, error)
	RunArchived(queue, id string) (bool, error)
}

var _ Enqueuer = (*queue.Client)(nil)

// Options tune a Service. Zero values take the defaults.
type Options struct {
	// Interval is the length of a dispatch round (default 30s): each
	// campaign is dispatched at most once per round, by one worker.
	Interval time.Duration
	// Owner names this worker in round records (the dyno name).
	Owner string
	// SettleAfter is how long after an attempt ended the dispatcher applies
	// its outcome itself, when the call flow has not (default 10m).
	SettleAfter time.Duration
	// RequeueAfter is how long an attempt may stay queued before the
	// dispatcher enqueues its task again, in case the first enqueue was lost
	// (default 2m; the task id makes it a no-op when the task exists).
	RequeueAfter time.Duration
	// ExpireQueuedAfter is how long an attempt may stay queued before it is
	// cancelled undialed, so a lost task cannot hold a concurrency slot
	// forever (default 1h).
	ExpireQueuedAfter time.Duration
	// StatsEvery is how often a round counts its campaign into the
	// campaign_stats snapshot (default 1m; negative: never, except when the
	// campaign completes).
	StatsEvery time.Duration
	// PageSize is how many contacts a round reads and writes per round trip
	// (default 5000: on FerretDB every page rescans the campaign's contacts).
	PageSize int
	// Now is the clock (default time.Now); tests move it.
	Now    func() time.Time
	Logger *zap.Logger
}

// Defaults for Options.
const (
	DefaultInterval          = 30 * time.Second
	DefaultSettleAfter       = 10 * time.Minute
	DefaultRequeueAfter      = 2 * time.Minute
	DefaultExpireQueuedAfter = time.Hour
	DefaultPageSize          = 5000
	DefaultStatsEvery        = time.Minute
)

// Service runs campaigns: dispatch rounds, the check right before dialing,
// outcomes of ended calls, operator controls, import and stats. It is safe
// for concurrent use, and any number of workers may run one against the
// same database.
type Service struct {
	// All fields are set by New and never change.
	store Store
	queue Enqueuer
	opt   Options
	log   *zap.Logger
}

// New makes a Service. queue may be nil for uses that never enqueue
// (import, stats, pause, resume, cancel).
func New(st Store, queue Enqueuer, o Options) *Service {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Owner == "" {
		o.Owner = "worker"
	}
	if o.SettleAfter <= 0 {
		o.SettleAfter = DefaultSettleAfter
	}
	if o.RequeueAfter <= 0 {
		o.RequeueAfter = DefaultRequeueAfter
	}
	if o.ExpireQueuedAfter <= 0 {
		o.ExpireQueuedAfter = DefaultExpireQueuedAfter
	}
	if o.StatsEvery == 0 {
		o.StatsEvery = DefaultStatsEvery
	}
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Service{store: st, queue: queue, opt: o, log: log.Named("campaign")}
}

// now is the clock at the store's millisecond precision.
func (s *Service) now() time.Time { return s.opt.Now().UTC().Truncate(time.Millisecond) }

// AttemptID is the id of a contact's nth attempt. Being derived, not random,
// is what makes dispatch safe to run twice: two dispatchers that pick the
// same contact write the same attempt id, and only one insert succeeds.
func AttemptID(contactID bson.ObjectID, n int) string {
	return contactID.Hex() + "-" + strconv.Itoa(n)
}
