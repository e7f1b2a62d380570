package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// mongoService embeds FerretDB: it speaks the MongoDB wire protocol and
// needs no server binary (MongoDB itself is not packaged for these
// machines). It runs inside devstack, so stopping devstack stops it. It
// stores on SQLite, or on the stack's PostgreSQL when pg is set
// (--mongo-backend postgresql): SQLite has one writer at a time, which
// four worker processes dispatching 2,000 contacts outrun (make fleet).
type mongoService struct {
	pg      *postgresService // nil: SQLite
	uri     string
	logFile *os.File
	cancel  context.CancelFunc
	done    chan struct{} // closed when FerretDB's Run returns
}

func (m *mongoService) name() string              { return "mongo" }
func (m *mongoService) logPath(dir string) string { return filepath.Join(dir, "ferretdb.log") }

func (m *mongoService) endpoint() string {
	if m.pg != nil {
		return m.uri + "  (FerretDB on PostgreSQL)"
	}
	return m.uri + "  (FerretDB on SQLite)"
}

func (m *mongoService) after() []string {
	if m.pg != nil {
		return []string{m.pg.name()}
	}
	return nil
}

func (m *mongoService) env() []envVar {
	return []envVar{
		{"MONGODB_URI", m.uri},
		{"MONGODB_DATABASE", "docshield"},
	}
}

// sqliteParams let SQLite take the writes of many concurrent calls.
// SQLite has one writer at a time; the others wait in its busy handler.
// FerretDB sets WAL and a 10 s busy timeout, and begins its write
// transactions deferred. A deferred transaction that has read is refused
// at once (SQLITE_BUSY) when another writer committed meanwhile, and waits
// past 10 s happen once a burst of writes meets a busy CPU (40 calls
// answering at once): the writes of 40 calls were refused. So:
//   - _txlock=immediate: a transaction takes the write lock first and
//     waits its turn;
//   - busy_timeout 5 min: a burst is queued, never refused (the worker
//     writes off the audio path, so a slow write delays nobody, and its
//     own write timeouts bound the wait). Writers queue one behind the
//     other, so the last of a burst waits for all before it: 60 s was
//     not enough for a burst of 1,600 on a starved 2-core machine;
//   - synchronous=normal, WAL's usual pairing: a commit survives a crash
//     of the process (what the tests kill), not of the machine, and needs
//     no fsync, so each writer's turn is short.
const sqliteParams = "_pragma=busy_timeout(300000)&_txlock=immediate&_pragma=synchronous(normal)"

func (m *mongoService) start(ctx context.Context, dir string) error {
	data := filepath.Join(dir, "ferretdb")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return fmt.Errorf("ferretdb data dir: %w", err)
	}
	logFile, err := os.OpenFile(m.logPath(dir), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("ferretdb log: %w", err)
	}
	// FerretDB binds the listener in New, so port 0 is race-free here.
	cfg := &ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:   backendSQLite,
		SQLiteURL: "file:" + data + "/?" + sqliteParams,
		Logger:    slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	if m.pg != nil {
		cfg.Handler, cfg.SQLiteURL, cfg.PostgreSQLURL = backendPostgreSQL, "", m.pg.url()
	}
	f, err := ferretdb.New(cfg)
	if err != nil {
		logFile.Close()
		return fmt.Errorf("ferretdb: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	m.logFile, m.cancel, m.done = logFile, cancel, make(chan struct{})
	go func() {
		defer close(m.done)
		_ = f.Run(runCtx)
	}()
	m.uri = f.MongoDBURI()

	if err := m.waitPing(ctx); err != nil {
		m.stop()
		return err
	}
	if m.pg != nil {
		if err := m.fillPool(ctx); err != nil {
			m.stop()
			return err
		}
	}
	return nil
}

// pgPoolFill is how many PostgreSQL connections FerretDB opens at start
// (its pool holds up to 50).
const pgPoolFill = 48

// fillPool makes FerretDB open its PostgreSQL connections now, not during
// the tests' first burst. FerretDB gives each new connection 2 s to answer
// `SELECT version()` (pool/opendb.go), and PostgreSQL's postmaster starts
// its backends one at a time: forty calls writing at once on a busy
// machine forked forty backends in a queue, and the last ones' writes were
// refused with an i/o timeout. Concurrent finds that each hold a
// connection open (a cursor of one-document batches) make the pool open
// pgPoolFill connections; idle ones stay open for 30 minutes (pgxpool's
// default). On a busy machine some of the fill's own connections miss the
// 2 s, so it goes round again until every cursor opened at once: the ones
// that did open wait idle in the pool, and each round opens only the rest.
// The warm-up database is dropped afterwards.
func (m *mongoService) fillPool(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(m.uri).SetMaxPoolSize(pgPoolFill + 2))
	if err != nil {
		return fmt.Errorf("mongo client: %w", err)
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	db := client.Database("devstack_pool_fill")
	defer func() { _ = db.Drop(context.Background()) }()
	coll := db.Collection("fill")
	if _, err := coll.InsertMany(ctx, []any{bson.M{"n": 1}, bson.M{"n": 2}}); err != nil {
		return fmt.Errorf("mongo pool fill: %w", err)
	}
	const rounds = 10
	var failed error
	for range rounds {
		if failed = openCursors(ctx, coll, pgPoolFill); failed == nil || ctx.Err() != nil {
			break
		}
	}
	if failed != nil {
		// Not fatal to the stack: the pool opens the rest on demand.
		fmt.Fprintf(os.Stderr, "devstack: FerretDB's PostgreSQL pool not filled: %v\n", failed)
	}
	return nil
}

// openCursors holds n cursors of coll open at once, each on a PostgreSQL
// connection of FerretDB's, and closes them; it returns the first error.
func openCursors(ctx context.Context, coll *mongo.Collection, n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	opened := make(chan struct{}, n)
	release := make(chan struct{})
	for range n {
		wg.Go(func() {
			// A first batch of one leaves the cursor, and its connection,
			// open until it is closed.
			cur, err := coll.Find(ctx, bson.M{}, options.Find().SetBatchSize(1))
			if err != nil {
				errs <- err
				return
			}
			opened <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
			_ = cur.Close(context.Background())
		})
	}
	var failed error
	for range n {
		select {
		case <-opened:
		case err := <-errs:
			failed = cmp.Or(failed, err)
		}
	}
	close(release)
	wg.Wait()
	return failed
}

// waitPing pings through the same driver the worker uses.
func (m *mongoService) waitPing(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(m.uri).SetServerSelectionTimeout(2 * time.Second))
	if err != nil {
		return fmt.Errorf("mongo client: %w", err)
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := client.Ping(ctx, nil)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("mongo ping %s: %w", m.uri, err)
		case <-tick.C:
		}
	}
}

func (m *mongoService) stop() {
	m.cancel()
	<-m.done
	m.logFile.Close()
}
