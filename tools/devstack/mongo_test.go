package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The local FerretDB holds the writes of as many concurrent calls as one
// dyno takes (40), all at once: each simulated call inserts its document, then appends
// transcript turns and renews its lease (conditional updates, as the
// worker's store does) while every other call does the same. SQLite takes
// one writer at a time; none of the writes may be refused for it
// (SQLITE_BUSY, "database is locked").
func TestMongoHoldsTheWritesOfManyCalls(t *testing.T) {
	const calls, writes = 40, 10
	m := &mongoService{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	require.NoError(t, m.start(ctx, t.TempDir()))
	defer m.stop()
	client, err := mongo.Connect(options.Client().ApplyURI(m.uri).SetMaxPoolSize(calls + 10))
	require.NoError(t, err)
	defer func() { _ = client.Disconnect(context.Background()) }()
	coll := client.Database("docshield").Collection("calls")
	_, err = coll.InsertOne(ctx, bson.M{"_id": "warm-up"}) // creates the collection
	require.NoError(t, err)

	var wg sync.WaitGroup
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
				var err error
				if w%5 == 4 {
					err = coll.FindOneAndUpdate(ctx, bson.M{"_id": id, "fence": 1},
						bson.M{"$set": bson.M{"lease_until": time.Now().Add(time.Minute)}}).Err()
				} else {
					_, err = coll.UpdateOne(ctx, bson.M{"_id": id, "fence": 1}, bson.M{
						"$push": bson.M{"transcript": bson.M{"role": "agent", "text": strings.Repeat("words ", 30), "n": w}},
						"$set":  bson.M{"status": "in_progress"},
					})
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
	n, err := coll.CountDocuments(ctx, bson.M{"transcript": bson.M{"$size": writes - writes/5}})
	require.NoError(t, err)
	require.Equal(t, int64(calls), n, "every call has all its turns")
}
