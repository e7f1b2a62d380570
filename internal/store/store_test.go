package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/docshield/voice-worker/internal/testenv"
)

// openStore connects to db on uri without creating or dropping anything.
func openStore(t testing.TB, uri, db string) *Store {
	t.Helper()
	s, err := Open(t.Context(), Options{
		URI:                    uri,
		Database:               db,
		ServerSelectionTimeout: 20 * time.Second,
		AppName:                "store-test",
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, s.Close(ctx))
	})
	return s
}

// newTestStore gives the test its own database on the stack's server, with
// indexes, dropped when the test ends.
func newTestStore(t testing.TB) *Store {
	t.Helper()
	s := openStore(t, testenv.MongoURI(t), testenv.UniqueName(t))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, s.DB().Drop(ctx), "drop test database %s", s.DB().Name())
	})
	require.NoError(t, s.EnsureIndexes(t.Context()))
	return s
}

func TestOpenDoesNotNeedTheServerUntilPing(t *testing.T) {
	t.Parallel()
	// Nothing listens on a port that was just free: Open must still work,
	// so a worker starts while the database is down, and Ping must say so.
	uri := fmt.Sprintf("mongodb://127.0.0.1:%d/", testenv.FreePort(t))
	s, err := Open(t.Context(), Options{URI: uri, Database: "nothing", ServerSelectionTimeout: 500 * time.Millisecond})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close(context.Background())) }()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.Error(t, s.Ping(ctx))
}

func TestOpenDatabaseName(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), Options{URI: "mongodb://127.0.0.1:1/fromuri"})
	require.NoError(t, err)
	require.Equal(t, "fromuri", s.DB().Name())
	require.NoError(t, s.Close(context.Background()))

	s, err = Open(t.Context(), Options{URI: "mongodb://127.0.0.1:1/fromuri", Database: "explicit"})
	require.NoError(t, err)
	require.Equal(t, "explicit", s.DB().Name())
	require.NoError(t, s.Close(context.Background()))

	_, err = Open(t.Context(), Options{URI: "mongodb://127.0.0.1:1/"})
	require.ErrorContains(t, err, "Options.Database")

	_, err = Open(t.Context(), Options{})
	require.ErrorContains(t, err, "Options.URI")
}

func TestOpenErrorsNeverShowThePassword(t *testing.T) {
	t.Parallel()
	for _, uri := range []string{
		"mongodb://alice:s3cretPW@localhost:notaport/db",
		"mongodb://alice:s3cret%zzPW@localhost/db",
		"mongodb://alice:s3cretPW@localhost/db?connectTimeoutMS=abc",
		"postgres://alice:s3cretPW@localhost/db",
	} {
		_, err := Open(t.Context(), Options{URI: uri})
		require.ErrorContains(t, err, "Options.URI", uri)
		require.NotContains(t, err.Error(), "s3cret", uri)
	}
}

func TestRedactCredentials(t *testing.T) {
	t.Parallel()
	uri := "mongodb://alice:p%40ss@host/db"
	got := redactCredentials(`bad "alice:p%40ss" and "p%40ss" and "p@ss"`, uri)
	require.NotContains(t, got, "p%40ss")
	require.NotContains(t, got, "p@ss")
	require.Equal(t, "no userinfo here", redactCredentials("no userinfo here", "mongodb://host/db"))
}

func TestEnsureIndexesIsIdempotent(t *testing.T) {
	t.Parallel()
	s := newTestStore(t) // first run
	require.NoError(t, s.EnsureIndexes(t.Context()))
	requireIndexes(t, s)
}

func TestEnsureIndexesConcurrentlyOnFreshDatabase(t *testing.T) {
	t.Parallel()
	// Two dynos starting at once, before any collection exists.
	s := newTestStore(t)
	require.NoError(t, s.DB().Drop(t.Context()))

	other := openStore(t, testenv.MongoURI(t), s.DB().Name())
	start := make(chan struct{})
	errs := make(chan error, 2)
	for _, st := range []*Store{s, other} {
		go func() {
			<-start
			errs <- st.EnsureIndexes(t.Context())
		}()
	}
	close(start)
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)
	requireIndexes(t, s)
}

func requireIndexes(t *testing.T, s *Store) {
	t.Helper()
	for _, want := range indexes {
		specs, err := s.DB().Collection(want.coll).Indexes().ListSpecifications(t.Context())
		require.NoError(t, err)
		var found *mongo.IndexSpecification
		for _, sp := range specs {
			if sp.Name == want.name {
				found = &sp
			}
		}
		require.NotNil(t, found, "index %s.%s missing", want.coll, want.name)
		unique := found.Unique != nil && *found.Unique
		require.Equal(t, want.unique, unique, "index %s.%s unique", want.coll, want.name)
		var keys bson.D
		require.NoError(t, bson.Unmarshal(found.KeysDocument, &keys))
		require.Len(t, keys, len(want.keys), "index %s.%s keys", want.coll, want.name)
		for i := range keys {
			require.Equal(t, want.keys[i].Key, keys[i].Key, "index %s.%s key %d", want.coll, want.name, i)
		}
	}
}

func TestUniqueContactPerCampaignAndPhone(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	campaign, otherCampaign := bson.NewObjectID(), bson.NewObjectID()
	contact := Contact{CampaignID: campaign, Phone: "+14155550100", Status: ContactPending}

	_, err := s.DB().Collection(CollContacts).InsertOne(ctx, contact)
	require.NoError(t, err)
	_, err = s.DB().Collection(CollContacts).InsertOne(ctx, contact)
	require.True(t, mongo.IsDuplicateKeyError(err), "second insert of the same campaign+phone: %v", err)

	contact.CampaignID = otherCampaign
	_, err = s.DB().Collection(CollContacts).InsertOne(ctx, contact)
	require.NoError(t, err, "the same phone in another campaign is allowed")
}

func TestCallStatusTerminal(t *testing.T) {
	t.Parallel()
	live := []CallStatus{CallQueued, CallDialing, CallRinging, CallInProgress}
	for _, st := range live {
		require.False(t, st.Terminal(), st)
		require.True(t, st.Valid(), st)
	}
	for _, st := range []CallStatus{CallCompleted, CallNoAnswer, CallBusy, CallVoicemail, CallFailed, CallInterrupted, CallCancelled} {
		require.True(t, st.Terminal(), st)
		require.True(t, st.Valid(), st)
	}
	require.False(t, CallStatus("done").Valid())
	require.False(t, CallStatus("").Terminal())
}

func TestLockAttemptHonoursContext(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), Options{URI: "mongodb://127.0.0.1:1/x"})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close(context.Background())) }()

	unlock, err := s.lockAttempt(t.Context(), "a1")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = s.lockAttempt(ctx, "a1")
	require.ErrorIs(t, err, context.Canceled)
	unlock()

	unlock, err = s.lockAttempt(t.Context(), "a1")
	require.NoError(t, err, "the lock is free again after unlock")
	unlock()
}

// collectErrors runs n copies of f at once and returns their errors.
func collectErrors(n int, f func(i int) error) []error {
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = f(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}
