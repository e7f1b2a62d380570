package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// indexSpec is one named index. Names are explicit so that a changed key
// list under an old name fails loudly (IndexOptionsConflict/IndexKeySpecs
// Conflict) instead of silently adding a second index.
type indexSpec struct {
	coll   string
	name   string
	keys   bson.D
	unique bool
}

// indexes avoids partial and sparse indexes: the unique ones cover fields
// every document has, which is what both Atlas and FerretDB v1.24 handle.
var indexes = []indexSpec{
	{CollCampaigns, "status", bson.D{{Key: "status", Value: 1}}, false},

	{CollContacts, "campaign_id_phone", bson.D{{Key: "campaign_id", Value: 1}, {Key: "phone", Value: 1}}, true},
	// Support: a number's contacts in every campaign (`worker contact show`).
	{CollContacts, "phone", bson.D{{Key: "phone", Value: 1}}, false},
	// Dispatch: due contacts of one campaign.
	{CollContacts, "campaign_id_status_next_attempt_at", bson.D{
		{Key: "campaign_id", Value: 1}, {Key: "status", Value: 1}, {Key: "next_attempt_at", Value: 1},
	}, false},

	// Concurrency headroom: live attempts of one campaign.
	{CollCalls, "campaign_id_status", bson.D{{Key: "campaign_id", Value: 1}, {Key: "status", Value: 1}}, false},
	{CollCalls, "contact_id_created_at", bson.D{{Key: "contact_id", Value: 1}, {Key: "created_at", Value: 1}}, false},
	// Support: a number's one-off calls (`worker contact show`).
	{CollCalls, "phone_created_at", bson.D{{Key: "phone", Value: 1}, {Key: "created_at", Value: 1}}, false},
	// Stats: one pass over a campaign's calls grouped by these fields, so
	// Atlas can answer it from the index without reading the (large)
	// call documents.
	{CollCalls, "campaign_id_status_outcome_dialing_at_answered_at", bson.D{
		{Key: "campaign_id", Value: 1}, {Key: "status", Value: 1}, {Key: "outcome", Value: 1},
		{Key: "dialing_at", Value: 1}, {Key: "answered_at", Value: 1},
	}, false},
	// Reaper: active attempts whose owner stopped renewing.
	{CollCalls, "status_lease_expires_at", bson.D{{Key: "status", Value: 1}, {Key: "lease_expires_at", Value: 1}}, false},

	// Recording sweep: pending uploads and ended calls still in segments.
	{CollCalls, "recording_status", bson.D{{Key: "recording_status", Value: 1}}, false},
	{CollCalls, "recording_partial_final_key", bson.D{{Key: "recording_partial.final_key", Value: 1}}, false},

	// Reaper: claims whose owner may have died before starting the attempt.
	{CollCallClaims, "lease_expires_at", bson.D{{Key: "lease_expires_at", Value: 1}}, false},
	// Recorded ends the call documents may not show yet (ends.go).
	{CollCallClaims, "ended_at", bson.D{{Key: "ended_at", Value: 1}}, false},

	{CollDoNotCall, "phone", bson.D{{Key: "phone", Value: 1}}, true},
}

// EnsureIndexes creates the collections' indexes. Creating an index that
// already exists with the same name and keys is a no-op on both servers, so
// this is safe on every start and from several dynos at once.
//
// One createIndexes command per index, not one per collection: FerretDB
// v1.24 panics (and drops the connection) when a multi-index command names
// two or more indexes that already exist (it deletes from its filtered list
// by the unfiltered position, see validateIndexesForCreation).
func (s *Store) EnsureIndexes(ctx context.Context) error {
	for _, ix := range indexes {
		opts := options.Index().SetName(ix.name)
		if ix.unique {
			opts.SetUnique(true)
		}
		_, err := s.db.Collection(ix.coll).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.keys, Options: opts})
		if err != nil {
			return fmt.Errorf("store: create index %s.%s: %w", ix.coll, ix.name, err)
		}
	}
	return nil
}

// MissingIndexes lists "collection.index" names that EnsureIndexes would
// create, for `worker verify mongo`; it changes nothing.
func (s *Store) MissingIndexes(ctx context.Context) ([]string, error) {
	present := map[string]bool{}
	colls := map[string]bool{}
	for _, ix := range indexes {
		colls[ix.coll] = true
	}
	for coll := range colls {
		specs, err := s.db.Collection(coll).Indexes().ListSpecifications(ctx)
		if err != nil {
			// A collection that does not exist yet has no indexes; servers
			// answer that either with an empty list or NamespaceNotFound.
			var ce mongo.CommandError
			if errors.As(err, &ce) && ce.Code == 26 {
				continue
			}
			return nil, fmt.Errorf("store: list indexes of %s: %w", coll, err)
		}
		for _, sp := range specs {
			present[coll+"."+sp.Name] = true
		}
	}
	var missing []string
	for _, ix := range indexes {
		if name := ix.coll + "." + ix.name; !present[name] {
			missing = append(missing, name)
		}
	}
	return missing, nil
}
