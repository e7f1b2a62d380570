package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"
)

// Collection names. The campaign backend reads and writes the same
// collections, so these names are part of the contract.
const (
	CollCampaigns  = "campaigns"
	CollContacts   = "contacts"
	CollCalls      = "calls"
	CollCallClaims = "call_claims"
	CollDoNotCall  = "do_not_call"
)

// Errors callers branch on with errors.Is. Returned errors wrap them with the
// attempt id and the reason.
var (
	// ErrNotFound: no document with that id.
	ErrNotFound = errors.New("store: not found")
	// ErrDuplicate: a document with that id (or unique key) already exists.
	ErrDuplicate = errors.New("store: duplicate")
	// ErrClaimLost: the attempt exists but someone else claimed it, or it is
	// no longer queued. The caller must not dial.
	ErrClaimLost = errors.New("store: claim lost")
	// ErrClaimPending is an ErrClaimLost where another owner's claim won
	// the ledger but has not yet moved the attempt out of queued. If that
	// owner died in between, the attempt is settled as cancelled (never
	// dialed) once the lease lapses, by the reaper or the next claimer.
	ErrClaimPending = fmt.Errorf("%w: winner has not started the attempt yet", ErrClaimLost)
	// ErrClaimSettled is an ErrClaimLost where the winning claim lapsed
	// without starting the attempt and this call settled it as cancelled:
	// the caller should have its outcome applied (the contact is due again).
	ErrClaimSettled = fmt.Errorf("%w: the winning claim lapsed unstarted; attempt cancelled", ErrClaimLost)
	// ErrFenceMismatch: the claim's fence is stale (the attempt was reaped or
	// belongs to another owner) or the attempt is already terminal. The
	// caller no longer owns the attempt and must stop writing to it.
	ErrFenceMismatch = errors.New("store: fence mismatch")
	// ErrInvalidTransition: the caller owns the attempt but the requested
	// status does not follow its current one (for example ringing after
	// in_progress). Nothing was written.
	ErrInvalidTransition = errors.New("store: invalid status transition")
)

// Options configures Open. Zero durations and pool sizes keep the driver's
// defaults.
type Options struct {
	// URI is a mongodb:// or mongodb+srv:// connection string. It may hold
	// credentials: it is never printed.
	URI string
	// Database to use; when empty, the database named in URI's path.
	Database               string
	MaxPoolSize            uint64
	MinPoolSize            uint64
	ConnectTimeout         time.Duration
	ServerSelectionTimeout time.Duration
	AppName                string
}

// lockStripes bounds the per-attempt write locks: attempts hashing to the
// same stripe share a lock, which only costs a little waiting.
const lockStripes = 64

// Store is the MongoDB-backed record store. It is safe for concurrent use.
type Store struct {
	client *mongo.Client
	db     *mongo.Database

	campaigns, contacts, calls, claims, dnc *mongo.Collection

	// now is time.Now outside tests; tests move it to expire leases.
	now func() time.Time

	// stripes serialize writes to one call document within this process
	// (see the package doc); each is a one-slot semaphore so waiting
	// honours the caller's context.
	stripes [lockStripes]chan struct{}
}

// Open configures a client and returns at once: the driver connects lazily
// and keeps retrying in the background, so a database that is down at start
// does not stop the worker from starting. Use Ping to find out whether it is
// reachable.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.URI == "" {
		return nil, errors.New("store: Options.URI is empty")
	}
	// Parse ourselves first so a parse error can be stripped of the
	// credentials before it is returned. A mongodb+srv URI is resolved here
	// (DNS), so a DNS failure does fail Open; the process manager restarts.
	cs, err := connstring.ParseAndValidate(o.URI)
	if err != nil {
		return nil, fmt.Errorf("store: Options.URI is not a valid MongoDB connection string: %s",
			redactCredentials(err.Error(), o.URI))
	}
	dbName := o.Database
	if dbName == "" {
		dbName = cs.Database
	}
	if dbName == "" {
		return nil, errors.New("store: Options.Database is empty and Options.URI names no database")
	}

	co := options.Client().ApplyURI(o.URI).
		// Retryable writes need a replica set (Atlas); the driver turns
		// them off by itself against a standalone server such as FerretDB.
		SetRetryWrites(true).
		SetRetryReads(true)
	if o.MaxPoolSize > 0 {
		co.SetMaxPoolSize(o.MaxPoolSize)
	}
	if o.MinPoolSize > 0 {
		co.SetMinPoolSize(o.MinPoolSize)
	}
	if o.ConnectTimeout > 0 {
		co.SetConnectTimeout(o.ConnectTimeout)
	}
	if o.ServerSelectionTimeout > 0 {
		co.SetServerSelectionTimeout(o.ServerSelectionTimeout)
	}
	if o.AppName != "" {
		co.SetAppName(o.AppName)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	client, err := mongo.Connect(co)
	if err != nil {
		return nil, fmt.Errorf("store: configure MongoDB client: %w", err)
	}
	return ForDatabase(client.Database(dbName)), nil
}

// ForDatabase is a Store over a database whose client the caller made and
// owns (a backend's own connection): Close disconnects that client.
func ForDatabase(db *mongo.Database) *Store {
	s := &Store{
		client:    db.Client(),
		db:        db,
		campaigns: db.Collection(CollCampaigns),
		contacts:  db.Collection(CollContacts),
		calls:     db.Collection(CollCalls),
		claims:    db.Collection(CollCallClaims),
		dnc:       db.Collection(CollDoNotCall),
		now:       time.Now,
	}
	for i := range s.stripes {
		s.stripes[i] = make(chan struct{}, 1)
	}
	return s
}

// Close disconnects, waiting for in-flight operations until ctx ends.
func (s *Store) Close(ctx context.Context) error {
	return s.client.Disconnect(ctx)
}

// Ping checks that the primary answers within ctx.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx, readpref.Primary()); err != nil {
		return fmt.Errorf("store: ping MongoDB: %w", err)
	}
	return nil
}

// DB is the database, for queries this package does not own yet.
func (s *Store) DB() *mongo.Database { return s.db }

// redactCredentials removes the URI's user info (and so its password) from
// text that may quote it.
func redactCredentials(text, uri string) string {
	start := strings.Index(uri, "://")
	end := strings.LastIndex(uri, "@")
	if start < 0 || end <= start+3 {
		return text
	}
	userinfo := uri[start+3 : end]
	text = strings.ReplaceAll(text, userinfo, "REDACTED")
	if _, password, ok := strings.Cut(userinfo, ":"); ok && password != "" {
		text = strings.ReplaceAll(text, password, "REDACTED")
		if p, err := url.PathUnescape(password); err == nil && p != "" {
			text = strings.ReplaceAll(text, p, "REDACTED")
		}
	}
	return text
}

// clock returns the current time at BSON's millisecond precision, so values
// read back compare equal to the ones written.
func (s *Store) clock() time.Time {
	return s.now().UTC().Truncate(time.Millisecond)
}

// lockAttempt serializes this process's writes to one call document.
func (s *Store) lockAttempt(ctx context.Context, attemptID string) (unlock func(), err error) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(attemptID))
	ch := s.stripes[h.Sum32()%lockStripes]
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("store: wait to write attempt %q: %w", attemptID, ctx.Err())
	}
}
