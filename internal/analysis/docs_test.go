package analysis

import (
	"encoding/json"
	"maps"
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/docshield/voice-worker/internal/agent"
	"github.com/docshield/voice-worker/internal/analysis/chatsim"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// docBlock returns the ```json <name> block of docs/CAMPAIGNS.md.
func docBlock(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/CAMPAIGNS.md")
	require.NoError(t, err)
	m := regexp.MustCompile("(?s)```json " + name + "\n(.*?)```").FindSubmatch(b)
	require.NotNil(t, m, "docs/CAMPAIGNS.md has no ```json %s block", name)
	return string(m[1])
}

// requireKnownFields checks that every field the document shows is one the
// Go value stores, so the doc cannot show a field the worker ignores.
func requireKnownFields(t *testing.T, path string, doc bson.M, typed any) {
	t.Helper()
	raw, err := bson.Marshal(typed)
	require.NoError(t, err)
	var fromType bson.M
	require.NoError(t, bson.Unmarshal(raw, &fromType))
	require.Equal(t, slices.Sorted(maps.Keys(fromType)), slices.Sorted(maps.Keys(doc)), "fields of %s", path)
}

func TestDocumentedAnalysisSpecIsValid(t *testing.T) {
	t.Parallel()
	var doc struct {
		Analysis store.AnalysisSpec `bson:"analysis"`
	}
	block := docBlock(t, "analysis")
	require.NoError(t, bson.UnmarshalExtJSON([]byte(block), false, &doc))
	require.NoError(t, ValidateSpec(doc.Analysis))
	var raw struct {
		Analysis struct {
			Extraction []bson.M `bson:"extraction"`
		} `bson:"analysis"`
	}
	require.NoError(t, bson.UnmarshalExtJSON([]byte(block), false, &raw))
	for i, f := range raw.Analysis.Extraction {
		require.Subset(t, []string{"name", "description", "type", "enum", "required"}, slices.Collect(maps.Keys(f)), "extraction[%d]", i)
	}
	types := map[string]bool{}
	for _, f := range doc.Analysis.Extraction {
		types[f.Type] = true
	}
	require.Len(t, types, 4, "the example shows every type")

	schema, err := Schema(doc.Analysis)
	require.NoError(t, err)
	require.NoError(t, chatsim.ValidateStrictSchema(schema))
}

func TestDocumentedCallAnalysisIsAValidResult(t *testing.T) {
	t.Parallel()
	var spec struct {
		Analysis store.AnalysisSpec `bson:"analysis"`
	}
	require.NoError(t, bson.UnmarshalExtJSON([]byte(docBlock(t, "analysis")), false, &spec))

	block := docBlock(t, "call-analysis")
	var doc struct {
		Summary   string             `bson:"summary"`
		Extracted map[string]any     `bson:"extracted"`
		Analysis  store.CallAnalysis `bson:"analysis"`
	}
	require.NoError(t, bson.UnmarshalExtJSON([]byte(block), false, &doc))
	var top bson.M
	require.NoError(t, bson.UnmarshalExtJSON([]byte(block), false, &top))
	require.ElementsMatch(t, []string{"summary", "extracted", "analysis"}, slices.Collect(maps.Keys(top)))
	var raw struct {
		Analysis bson.M `bson:"analysis"`
	}
	require.NoError(t, bson.UnmarshalExtJSON([]byte(block), false, &raw))
	requireKnownFields(t, "analysis", raw.Analysis, doc.Analysis)
	require.Equal(t, store.AnalysisDone, doc.Analysis.Status)

	// The example is an answer the worker would have accepted for the
	// example spec.
	answer, err := json.Marshal(map[string]any{"summary": doc.Summary, "disposition": doc.Analysis.Disposition, "extracted": doc.Extracted})
	require.NoError(t, err)
	_, err = ParseAnswer(string(answer), spec.Analysis)
	require.NoError(t, err)

	b, err := os.ReadFile("../../docs/CAMPAIGNS.md")
	require.NoError(t, err)
	for _, d := range agent.Dispositions {
		require.Contains(t, string(b), "`"+d+"`", "every disposition is documented")
	}
}
