package health

import (
	"context"
	"fmt"
	"time"

	"github.com/docshield/voice-worker/internal/store"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// MongoPing is the `health` check for MongoDB.
func MongoPing(ctx context.Context, st *store.Store) (string, error) {
	start := time.Now()
	if err := st.Ping(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("ping %s in %s", st.DB().Name(), time.Since(start).Round(10*time.Microsecond)), nil
}

// VerifyMongo checks reachability, the server, and that the collections
// and indexes the worker relies on exist (they are created at `run` start).
func VerifyMongo(ctx context.Context, st *store.Store) []Finding {
	f := &Findings{Target: "mongo"}
	detail, err := MongoPing(ctx, st)
	if err != nil {
		f.Fail("ping", "%v: check MONGODB_URI, the Atlas network access list and the cluster's status", err)
		return f.List
	}
	f.OK("ping", "%s", detail)
	var info struct {
		Version string `bson:"version"`
	}
	if err := st.DB().RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		f.Warn("server", "buildInfo failed: %v", err)
	} else {
		f.OK("server", "MongoDB-compatible server %s", info.Version)
	}
	missing, err := st.MissingIndexes(ctx)
	switch {
	case err != nil:
		f.Fail("indexes", "listing indexes: %v", err)
	case len(missing) > 0:
		f.Warn("indexes", "missing %v: start `worker run` once to create them", missing)
	default:
		f.OK("indexes", "all collections and indexes present")
	}
	return f.List
}
