package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// ValidatedCollections are the collections the campaign backend writes,
// each with a $jsonSchema validator in schemas/mongodb.
var ValidatedCollections = []string{CollCampaigns, CollContacts}

// The validators' settings, chosen so that they stop new mistakes without
// breaking what already works:
//   - validationAction "error": a mistyped insert or update is refused at
//     the backend's own call, with the failing field in the error, instead
//     of being written and then ignored by the worker;
//   - validationLevel "moderate": inserts, and updates of documents that
//     are valid, are checked; an update of a document that was already
//     invalid before the validator existed is not, so the worker can still
//     finish such a contact (its outcome, exhausted) while `worker campaign
//     check` reports it.
const (
	ValidationAction = "error"
	ValidationLevel  = "moderate"
)

// Server error codes Migrate tells apart.
const (
	codeUnauthorized      = 13
	codeNamespaceNotFound = 26
	codeNamespaceExists   = 48
	codeCommandNotFound   = 59
	codeNotImplemented    = 238
)

// Migration step states.
const (
	StepCreated     = "created"
	StepExists      = "exists"
	StepApplied     = "applied"
	StepUnsupported = "unsupported"
)

// MigrationStep is one thing Migrate made sure of.
type MigrationStep struct {
	// What is "index <collection>.<name>" or "validator <collection>".
	What string `json:"what"`
	// State is StepCreated or StepExists for an index, StepApplied or
	// StepUnsupported for a validator.
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
}

// ErrValidatorNotAllowed: the database user may not change validators.
var ErrValidatorNotAllowed = errors.New("store: the database user may not set collection validators (collMod): grant it the dbAdmin role on the worker's database")

// Migrate creates the indexes and applies the validators. Every step is
// idempotent, so it runs on every release (heroku.yml's release phase) and
// may run from two places at once. A server that does not enforce
// validators (FerretDB v1.24 answers NotImplemented) is reported as
// StepUnsupported, not as a failure: nothing is checked there, and `worker
// campaign check` finds what a validator would have refused.
func (s *Store) Migrate(ctx context.Context) ([]MigrationStep, error) {
	missing, err := s.MissingIndexes(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.EnsureIndexes(ctx); err != nil {
		return nil, err
	}
	steps := make([]MigrationStep, 0, len(indexes)+len(ValidatedCollections))
	for _, ix := range indexes {
		name := ix.coll + "." + ix.name
		state := StepExists
		for _, m := range missing {
			if m == name {
				state = StepCreated
			}
		}
		steps = append(steps, MigrationStep{What: "index " + name, State: state})
	}
	for _, coll := range ValidatedCollections {
		step, err := s.applyValidator(ctx, coll)
		if err != nil {
			return steps, err
		}
		steps = append(steps, step)
	}
	return steps, nil
}

// ValidatorCommands are the commands Migrate sends for a collection: collMod
// for one that exists, create for one that does not yet.
func ValidatorCommands(coll string) (collMod, create bson.D, err error) {
	sch, err := LoadSchema(coll)
	if err != nil {
		return nil, nil, err
	}
	v, err := sch.Validator()
	if err != nil {
		return nil, nil, err
	}
	opts := bson.D{
		{Key: "validator", Value: v},
		{Key: "validationLevel", Value: ValidationLevel},
		{Key: "validationAction", Value: ValidationAction},
	}
	return append(bson.D{{Key: "collMod", Value: coll}}, opts...), append(bson.D{{Key: "create", Value: coll}}, opts...), nil
}

func (s *Store) applyValidator(ctx context.Context, coll string) (MigrationStep, error) {
	step := MigrationStep{What: "validator " + coll}
	collMod, create, err := ValidatorCommands(coll)
	if err != nil {
		return step, err
	}
	err = s.db.RunCommand(ctx, collMod).Err()
	if commandCode(err) == codeNamespaceNotFound {
		err = s.db.RunCommand(ctx, create).Err()
		if commandCode(err) == codeNamespaceExists { // created meanwhile by someone else
			err = s.db.RunCommand(ctx, collMod).Err()
		}
	}
	switch commandCode(err) {
	case 0:
		if err != nil {
			return step, fmt.Errorf("store: apply validator to %s: %w", coll, err)
		}
		step.State = StepApplied
		step.Detail = fmt.Sprintf("validationLevel %s, validationAction %s", ValidationLevel, ValidationAction)
	case codeNotImplemented, codeCommandNotFound:
		step.State = StepUnsupported
		step.Detail = "this server does not enforce validators (FerretDB); writes are not checked here, `worker campaign check` finds mistyped documents"
	case codeUnauthorized:
		return step, fmt.Errorf("store: apply validator to %s: %w: %w", coll, ErrValidatorNotAllowed, err)
	default:
		return step, fmt.Errorf("store: apply validator to %s: %w", coll, err)
	}
	return step, nil
}

// commandCode is the server's error code, 0 for no error or one without a
// code.
func commandCode(err error) int32 {
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}
