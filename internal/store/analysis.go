package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// AnalysisSpec is a campaign's `analysis` subdocument: what the post-call
// analysis extracts from each of its calls. It sits next to the fields of
// Campaign and is read on its own (GetAnalysisSpec), so a campaign without
// one decodes as before.
type AnalysisSpec struct {
	// Instructions is extra context for the analyst from the campaign
	// backend, e.g. what the calls are for.
	Instructions string            `bson:"instructions,omitempty"`
	Extraction   []ExtractionField `bson:"extraction,omitempty"`
}

// ExtractionField is one value to extract from a call.
type ExtractionField struct {
	// Name is the key in the call's `extracted` object.
	Name        string `bson:"name"`
	Description string `bson:"description,omitempty"`
	// Type is "string", "boolean", "number" or "enum".
	Type string `bson:"type"`
	// Enum lists the allowed values of an enum field.
	Enum []string `bson:"enum,omitempty"`
	// Required fields always get a value; the others are null when the
	// call did not tell.
	Required bool `bson:"required,omitempty"`
}

// GetAnalysisSpec reads a campaign's analysis subdocument; a campaign
// without one has the zero spec.
func (s *Store) GetAnalysisSpec(ctx context.Context, campaignID bson.ObjectID) (AnalysisSpec, error) {
	var doc struct {
		Analysis AnalysisSpec `bson:"analysis"`
	}
	err := s.campaigns.FindOne(ctx, bson.D{{Key: "_id", Value: campaignID}},
		options.FindOne().SetProjection(bson.D{{Key: "analysis", Value: 1}})).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return AnalysisSpec{}, fmt.Errorf("store: get analysis spec of campaign %s: %w", campaignID.Hex(), ErrNotFound)
	}
	if err != nil {
		return AnalysisSpec{}, fmt.Errorf("store: get analysis spec of campaign %s: %w", campaignID.Hex(), err)
	}
	return doc.Analysis, nil
}

// AnalysisStatus says how a call's analysis went.
type AnalysisStatus string

const (
	// AnalysisDone: the model's answer passed validation and was stored.
	AnalysisDone AnalysisStatus = "done"
	// AnalysisSkipped: nothing was said, so the model was not asked; the
	// summary says why.
	AnalysisSkipped AnalysisStatus = "skipped"
	// AnalysisFailed: every try failed; Error says why the last one did.
	AnalysisFailed AnalysisStatus = "failed"
)

// CallAnalysis is the call document's `analysis` subdocument. It is
// written whole every time, so a re-run leaves no field of an earlier run
// behind.
type CallAnalysis struct {
	Status AnalysisStatus `bson:"status"`
	// Disposition is the analyst's reading of the call (one of
	// agent.Dispositions); set when Status is done.
	Disposition string `bson:"disposition,omitempty"`
	// Reason says why the analysis was skipped.
	Reason string `bson:"reason,omitempty"`
	// Error says why the last try failed.
	Error string `bson:"error,omitempty"`
	// Model is the chat model asked.
	Model string `bson:"model,omitempty"`
	// Tries is how many times the task ran for this result.
	Tries        int       `bson:"tries,omitempty"`
	InputTokens  int       `bson:"input_tokens,omitempty"`
	OutputTokens int       `bson:"output_tokens,omitempty"`
	At           time.Time `bson:"at"`
}

// AnalysisResult is everything a successful (or skipped) analysis writes
// to the call document: the top-level `summary` and `extracted` fields of
// Call, and the `analysis` subdocument.
type AnalysisResult struct {
	Summary string
	// Extracted has one key per extraction field (null when unknown); nil
	// removes the field.
	Extracted map[string]any
	Analysis  CallAnalysis
}

// AnalysisInput is an attempt as the analysis reads it: the Call, and the
// details the call flow recorded next to it that the contact's next step
// depends on.
type AnalysisInput struct {
	Call `bson:",inline"`
	// CallbackAt is when the callee asked to be called back.
	CallbackAt time.Time `bson:"callback_at,omitempty"`
}

// GetAnalysisInput reads one attempt for its analysis.
func (s *Store) GetAnalysisInput(ctx context.Context, attemptID string) (*AnalysisInput, error) {
	var in AnalysisInput
	err := s.calls.FindOne(ctx, bson.D{{Key: "_id", Value: attemptID}}).Decode(&in)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("store: get attempt %q for analysis: %w", attemptID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get attempt %q for analysis: %w", attemptID, err)
	}
	return &in, nil
}

// SaveAnalysisResult records the analysis of an ended attempt, replacing
// any earlier result or failure: running it again writes the same fields.
// An attempt that has not ended is refused with ErrInvalidTransition.
func (s *Store) SaveAnalysisResult(ctx context.Context, attemptID string, r AnalysisResult) error {
	op := "save analysis of"
	if r.Analysis.Status != AnalysisDone && r.Analysis.Status != AnalysisSkipped {
		return fmt.Errorf("store: %s attempt %q: AnalysisResult.Analysis.Status %q is not done or skipped", op, attemptID, r.Analysis.Status)
	}
	set := bson.D{{Key: "summary", Value: r.Summary}, {Key: "analysis", Value: r.Analysis}}
	update := bson.D{}
	if r.Extracted == nil {
		update = append(update, bson.E{Key: "$unset", Value: bson.D{{Key: "extracted", Value: ""}}})
	} else {
		set = append(set, bson.E{Key: "extracted", Value: sortedDoc(r.Extracted)})
	}
	update = append(update, bson.E{Key: "$set", Value: set})
	ok, err := s.updateEnded(ctx, op, attemptID, bson.D{}, update)
	if err != nil || ok {
		return err
	}
	if err := s.requireEnded(ctx, op, attemptID); err != nil {
		return err
	}
	// Ended, yet the write matched nothing: it ended in between.
	return fmt.Errorf("store: %s attempt %q: the attempt changed during the write; try again", op, attemptID)
}

// RecordAnalysisFailure records on an ended attempt that its analysis
// failed, unless an earlier run succeeded: a good result is never replaced
// by a later failure. It reports whether it wrote.
func (s *Store) RecordAnalysisFailure(ctx context.Context, attemptID string, a CallAnalysis) (bool, error) {
	op := "record analysis failure of"
	if a.Status != AnalysisFailed || a.Error == "" {
		return false, fmt.Errorf("store: %s attempt %q: CallAnalysis needs Status %q and an Error", op, attemptID, AnalysisFailed)
	}
	ok, err := s.updateEnded(ctx, op, attemptID,
		bson.D{{Key: "analysis.status", Value: bson.D{{Key: "$nin", Value: []AnalysisStatus{AnalysisDone, AnalysisSkipped}}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "analysis", Value: a}}}})
	if err != nil || ok {
		return ok, err
	}
	// No match: an earlier good result stands, or the attempt is not ended.
	return false, s.requireEnded(ctx, op, attemptID)
}

// GetAnalysisResult reads what the analysis wrote to an attempt; the zero
// Analysis.Status means it has not run.
func (s *Store) GetAnalysisResult(ctx context.Context, attemptID string) (AnalysisResult, error) {
	var doc struct {
		Summary   string         `bson:"summary"`
		Extracted map[string]any `bson:"extracted"`
		Analysis  CallAnalysis   `bson:"analysis"`
	}
	err := s.calls.FindOne(ctx, bson.D{{Key: "_id", Value: attemptID}},
		options.FindOne().SetProjection(bson.D{{Key: "summary", Value: 1}, {Key: "extracted", Value: 1}, {Key: "analysis", Value: 1}})).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return AnalysisResult{}, fmt.Errorf("store: get analysis of attempt %q: %w", attemptID, ErrNotFound)
	}
	if err != nil {
		return AnalysisResult{}, fmt.Errorf("store: get analysis of attempt %q: %w", attemptID, err)
	}
	return AnalysisResult{Summary: doc.Summary, Extracted: doc.Extracted, Analysis: doc.Analysis}, nil
}

// sortedDoc orders a map's keys, so that writing the same values again
// writes the same document (Go randomises map order).
func sortedDoc(m map[string]any) bson.D {
	d := make(bson.D, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		d = append(d, bson.E{Key: k, Value: m[k]})
	}
	return d
}

// updateEnded applies update to the attempt if it has ended and also
// matches filter. Nobody else writes an ended attempt, but the per-attempt
// lock still keeps two analyses in this process from interleaving their
// read-modify-write on FerretDB.
func (s *Store) updateEnded(ctx context.Context, op, attemptID string, filter, update bson.D) (bool, error) {
	if attemptID == "" {
		return false, fmt.Errorf("store: %s attempt: attemptID is empty", op)
	}
	unlock, err := s.lockAttempt(ctx, attemptID)
	if err != nil {
		return false, err
	}
	defer unlock()
	f := append(bson.D{
		{Key: "_id", Value: attemptID},
		{Key: "status", Value: bson.D{{Key: "$in", Value: TerminalCallStatuses}}},
	}, filter...)
	res, err := s.calls.UpdateOne(ctx, f, update)
	if err != nil {
		return false, fmt.Errorf("store: %s attempt %q: %w", op, attemptID, err)
	}
	return res.MatchedCount > 0, nil
}

// requireEnded explains a write that matched nothing: ErrNotFound, or
// ErrInvalidTransition when the attempt has not ended; nil when it has.
func (s *Store) requireEnded(ctx context.Context, op, attemptID string) error {
	status, err := s.callStatus(ctx, attemptID)
	switch {
	case err != nil:
		return fmt.Errorf("store: %s attempt %q: %w", op, attemptID, err)
	case !status.Terminal():
		return fmt.Errorf("store: %s attempt %q: %w: attempt is still %s", op, attemptID, ErrInvalidTransition, status)
	}
	return nil
}
