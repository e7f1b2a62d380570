package analysis

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/docshield/voice-worker/internal/agent"
	"github.com/docshield/voice-worker/internal/analysis/chatsim"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/stretchr/testify/require"
)

// practiceSpec has one field of every type, required and optional.
var practiceSpec = store.AnalysisSpec{
	Instructions: "We call dental practices to offer DocShield's records service.",
	Extraction: []store.ExtractionField{
		{Name: "interested", Description: "Is the practice interested?", Type: TypeBoolean, Required: true},
		{Name: "best_callback_time", Description: "When to call back, in their words", Type: TypeString},
		{Name: "decision_maker_name", Description: "Who decides", Type: TypeString},
		{Name: "providers", Description: "How many providers work there", Type: TypeNumber},
		{Name: "practice_size", Type: TypeEnum, Enum: []string{"solo", "small", "large"}},
		{Name: "language", Type: TypeEnum, Enum: []string{"en", "es"}, Required: true},
	},
}

func TestSpecProblemsNameTheirField(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", MaxDescriptionLen+1)
	spec := store.AnalysisSpec{
		Instructions: strings.Repeat("y", MaxInstructionsLen+1),
		Extraction: []store.ExtractionField{
			{Name: "ok", Type: TypeBoolean},
			{Name: "Bad Name", Type: TypeString},
			{Name: "ok", Type: TypeString},
			{Name: "n", Type: "integer"},
			{Name: "e", Type: TypeEnum},
			{Name: "s", Type: TypeString, Enum: []string{"a"}},
			{Name: "d", Type: TypeString, Description: long},
			{Name: "dup_enum", Type: TypeEnum, Enum: []string{"a", "a", " "}},
			{Name: "a.b", Type: TypeString},
			{Name: "$where", Type: TypeString},
		},
	}
	err := ValidateSpec(spec)
	require.ErrorIs(t, err, ErrInvalidSpec)
	for _, want := range []string{
		"analysis.instructions: is 4001 characters",
		`analysis.extraction[1].name: "Bad Name"`,
		`analysis.extraction[2].name: "ok" is used by an earlier field`,
		`analysis.extraction[3].type: "integer" must be one of`,
		"analysis.extraction[4].enum: must list 1 to 50 values, has 0",
		`analysis.extraction[5].enum: is only allowed with type "enum"`,
		"analysis.extraction[6].description: is 1001 characters",
		`analysis.extraction[7].enum: value "a" repeats`,
		"analysis.extraction[7].enum: value 2 must be 1 to 200 characters",
		`analysis.extraction[8].name: "a.b"`,
		`analysis.extraction[9].name: "$where"`,
	} {
		require.Contains(t, err.Error(), want)
	}
	require.NotContains(t, err.Error(), "extraction[0]")

	_, err = Schema(spec)
	require.ErrorIs(t, err, ErrInvalidSpec, "no schema for an invalid spec")

	many := store.AnalysisSpec{}
	for i := 0; i <= MaxFields; i++ {
		many.Extraction = append(many.Extraction, store.ExtractionField{Name: "f" + strings.Repeat("x", i), Type: TypeString})
	}
	require.ErrorContains(t, ValidateSpec(many), "analysis.extraction: has 51 fields, at most 50 allowed")
	require.NoError(t, ValidateSpec(practiceSpec))
	require.NoError(t, ValidateSpec(store.AnalysisSpec{}))
}

// schemaNode is the decoded schema, for assertions.
type schemaNode struct {
	Type                 any                   `json:"type"`
	Enum                 []any                 `json:"enum"`
	Description          string                `json:"description"`
	Properties           map[string]schemaNode `json:"properties"`
	Required             []string              `json:"required"`
	AdditionalProperties *bool                 `json:"additionalProperties"`
}

func TestSchemaFollowsTheSpecAndStrictRules(t *testing.T) {
	t.Parallel()
	raw, err := Schema(practiceSpec)
	require.NoError(t, err)
	require.NoError(t, chatsim.ValidateStrictSchema(raw), "OpenAI's strict rules")

	var root schemaNode
	require.NoError(t, json.Unmarshal(raw, &root))
	require.Equal(t, []string{"summary", "disposition", "extracted"}, root.Required)
	require.True(t, strings.HasPrefix(string(raw), `{"type":"object","properties":{"summary":`), "summary is written first")
	require.False(t, *root.AdditionalProperties)

	disp := root.Properties["disposition"]
	require.Equal(t, "string", disp.Type)
	require.Len(t, disp.Enum, len(agent.Dispositions))
	for i, d := range agent.Dispositions {
		require.Equal(t, d, disp.Enum[i])
		require.Contains(t, dispositionHelp, d+" (", "every disposition is explained to the model")
	}

	ex := root.Properties["extracted"]
	require.Equal(t, []string{"interested", "best_callback_time", "decision_maker_name", "providers", "practice_size", "language"}, ex.Required,
		"strict mode: every field is required, in spec order")
	require.False(t, *ex.AdditionalProperties)
	require.Len(t, ex.Properties, len(practiceSpec.Extraction))
	require.Equal(t, "boolean", ex.Properties["interested"].Type, "required: not nullable")
	require.Equal(t, "Is the practice interested?", ex.Properties["interested"].Description)
	require.Equal(t, []any{"string", "null"}, ex.Properties["best_callback_time"].Type, "optional: nullable")
	require.Contains(t, ex.Properties["best_callback_time"].Description, "at most 1000 characters")
	require.Equal(t, []any{"number", "null"}, ex.Properties["providers"].Type)
	require.Equal(t, []any{"string", "null"}, ex.Properties["practice_size"].Type)
	require.Equal(t, []any{"solo", "small", "large", nil}, ex.Properties["practice_size"].Enum)
	require.Equal(t, "string", ex.Properties["language"].Type)
	require.Equal(t, []any{"en", "es"}, ex.Properties["language"].Enum)

	raw, err = Schema(store.AnalysisSpec{})
	require.NoError(t, err)
	require.NoError(t, chatsim.ValidateStrictSchema(raw))
	root = schemaNode{}
	require.NoError(t, json.Unmarshal(raw, &root))
	require.Equal(t, []string{"summary", "disposition"}, root.Required, "no extracted object without fields")
	require.NotContains(t, root.Properties, "extracted")
}

func TestGeneratedAnswerPassesOurValidation(t *testing.T) {
	t.Parallel()
	raw, err := Schema(practiceSpec)
	require.NoError(t, err)
	answer, err := chatsim.Generate(raw)
	require.NoError(t, err)
	a, err := ParseAnswer(string(answer), practiceSpec)
	require.NoError(t, err, "the simulator's Auto answers are valid answers")
	require.Len(t, a.Extracted, len(practiceSpec.Extraction))
}
