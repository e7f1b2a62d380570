package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// startMongo starts FerretDB on backend, and the PostgreSQL it stores in
// for postgresql, in a directory of the test's; both stop at cleanup.
func startMongo(ctx context.Context, t *testing.T, backend string) *mongoService {
	t.Helper()
	dir := t.TempDir()
	m := &mongoService{}
	if backend == backendPostgreSQL {
		if _, err := pgBinDir(); err != nil {
			t.Skipf("%v", err)
		}
		m.pg = &postgresService{}
		require.NoError(t, m.pg.start(ctx, dir), "postgres log:\n%s", logTail(m.pg.logPath(dir), 30))
		t.Cleanup(m.pg.stop)
	}
	require.NoError(t, m.start(ctx, dir))
	t.Cleanup(m.stop)
	return m
}

// The local FerretDB holds the writes of as many concurrent calls as one
// dyno takes (40), all at once, on either backend: each simulated call
// inserts its document, then appends transcript turns and renews its
// lease (conditional updates, as the worker's store does) while every
// other call does the same. SQLite takes one writer at a time; none of
// the writes may be refused for it (SQLITE_BUSY, "database is locked"),
// nor for PostgreSQL's row locks.
//
// On PostgreSQL, FerretDB (v1.24, pgx 5.6) refuses the odd write on a
// starved machine: a connection from its pool fails its first statement
// at once with "i/o timeout" (seen: 1 to 3 in 400 under 6 CPU hogs; pgx
// 5.8 does the same). The worker's keeper retries a refused write (three
// tries, internal/call/keeper.go), so the test writes as the keeper does
// there: no write may be lost, and at most one in twenty may need a
// second try.
func TestMongoHoldsTheWritesOfManyCalls(t *testing.T) {
	for _, backend := range mongoBackends {
		t.Run(backend, func(t *testing.T) { testManyCallsWrites(t, backend) })
	}
}

// The worker's tries of one write, and the wait before the second
// (doubling), as internal/call's keeper has them.
const (
	keeperTries   = 3
	keeperBackoff = 250 * time.Millisecond
)

func testManyCallsWrites(t *testing.T, backend string) {
	const calls, writes = 40, 10
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	m := startMongo(ctx, t, backend)
	client, err := mongo.Connect(options.Client().ApplyURI(m.uri).SetMaxPoolSize(calls + 10))
	require.NoError(t, err)
	defer func() { _ = client.Disconnect(context.Background()) }()
	coll := client.Database("docshield").Collection("calls")
	_, err = coll.InsertOne(ctx, bson.M{"_id": "warm-up"}) // creates the collection
	require.NoError(t, err)
	if m.pg != nil {
		// A burst that finds the pool short opens connections on the
		// spot, which a busy machine refuses (fillPool).
		require.GreaterOrEqual(t, pgClientBackends(ctx, t, m.pg), pgPoolFill, "FerretDB's pool was filled at start")
	}

	var wg sync.WaitGroup
	var retried atomic.Int64
	errs := make(chan error, calls*writes)
	start := make(chan struct{})
	for c := range calls {
		wg.Go(func() {
			<-start
			id := fmt.Sprintf("call-%03d", c)
			if _, err := coll.InsertOne(ctx, bson.M{"_id": id, "status": "ringing", "fence": 1, "transcript": bson.A{}}); err != nil {
				errs <- err
				return
			}
			for w := range writes {
				write := func() error {
					if w%5 == 4 {
						return coll.FindOneAndUpdate(ctx, bson.M{"_id": id, "fence": 1},
							bson.M{"$set": bson.M{"lease_until": time.Now().Add(time.Minute)}}).Err()
					}
					// Idempotent, as the keeper's appends are: a retry of
					// a write that landed anyway adds nothing.
					_, err := coll.UpdateOne(ctx, bson.M{"_id": id, "fence": 1, "transcript.n": bson.M{"$ne": w}}, bson.M{
						"$push": bson.M{"transcript": bson.M{"role": "agent", "text": strings.Repeat("words ", 30), "n": w}},
						"$set":  bson.M{"status": "in_progress"},
					})
					return err
				}
				err := write()
				for try := 2; err != nil && backend == backendPostgreSQL && try <= keeperTries; try++ {
					retried.Add(1)
					t.Logf("%s write %d, try %d after: %v", id, w, try, err)
					time.Sleep(keeperBackoff << (try - 2)) // the keeper's backoff, not a wait for an event
					err = write()
				}
				if err != nil {
					errs <- fmt.Errorf("%s write %d: %w", id, w, err)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	var failed []string
	for err := range errs {
		failed = append(failed, err.Error())
	}
	require.Empty(t, failed, "%d of %d writes refused", len(failed), calls*writes)
	require.LessOrEqual(t, retried.Load(), int64(calls*writes/20), "writes that needed another try")
	n, err := coll.CountDocuments(ctx, bson.M{"transcript": bson.M{"$size": writes - writes/5}})
	require.NoError(t, err)
	require.Equal(t, int64(calls), n, "every call has all its turns")
}

// FerretDB on PostgreSQL: PostgreSQL refuses root, and the stack's
// namespace makes devstack root, so the server runs in a user namespace
// of its own; its cluster lives in the stack directory; FerretDB works on
// it; stop shuts it down cleanly, leaving no process.
func TestPostgresBackendStartsUnprivilegedAndStops(t *testing.T) {
	if _, err := pgBinDir(); err != nil {
		t.Skipf("%v", err)
	}
	svcs, err := selectServices("redis,minio,livekit,sip", backendPostgreSQL)
	require.NoError(t, err)
	st, err := newStack("", svcs)
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(st.dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	require.NoError(t, st.start(ctx, ""))
	pg := envLookup(svcs, "postgres").(*postgresService)
	pid := pg.p.pid()
	stopped := false
	defer func() {
		if !stopped {
			st.stop(false)
		}
	}()

	ours, err := os.Readlink("/proc/self/ns/user")
	require.NoError(t, err)
	theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pid))
	require.NoError(t, err)
	require.NotEqual(t, ours, theirs, "postgres runs in a user namespace of its own")
	require.FileExists(t, filepath.Join(st.dir, "postgres", "data", "PG_VERSION"))

	env := envMap(st.env())
	c, err := mongo.Connect(options.Client().ApplyURI(env["MONGODB_URI"]))
	require.NoError(t, err)
	defer func() { _ = c.Disconnect(context.Background()) }()
	coll := c.Database(env["MONGODB_DATABASE"]).Collection("devstack_test")
	_, err = coll.InsertOne(ctx, bson.M{"_id": "x"})
	require.NoError(t, err)
	_, err = coll.InsertOne(ctx, bson.M{"_id": "x"})
	require.True(t, mongo.IsDuplicateKeyError(err), "want E11000, got %v", err)

	// FerretDB's tables are in the PostgreSQL devstack started.
	conn, err := pgconn.Connect(ctx, env["DEVSTACK_POSTGRES_URL"])
	require.NoError(t, err)
	res, err := conn.Exec(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname = '"+env["MONGODB_DATABASE"]+"'").ReadAll()
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))
	require.Equal(t, "1", string(res[0].Rows[0][0]), "FerretDB keeps database %s as a schema", env["MONGODB_DATABASE"])

	st.stop(false) // keeps the directory, for the log
	stopped = true
	require.True(t, processGone(pid), "postgres pid %d still running after stop", pid)
	log, err := os.ReadFile(pg.logPath(st.dir))
	require.NoError(t, err)
	require.Contains(t, string(log), "database system is shut down", "a fast shutdown, not a kill")
}

// pgClientBackends counts the connections PostgreSQL serves, other than
// the one asking.
func pgClientBackends(ctx context.Context, t *testing.T, pg *postgresService) int {
	t.Helper()
	conn, err := pgconn.Connect(ctx, pg.url())
	require.NoError(t, err)
	defer func() { _ = conn.Close(context.Background()) }()
	res, err := conn.Exec(ctx, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()").ReadAll()
	require.NoError(t, err)
	n, err := strconv.Atoi(string(res[0].Rows[0][0]))
	require.NoError(t, err)
	return n
}
