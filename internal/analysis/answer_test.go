package analysis

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/docshield/voice-worker/internal/store"
	"github.com/stretchr/testify/require"
)

// goodAnswer is a valid answer for practiceSpec.
func goodAnswer() map[string]any {
	return map[string]any{
		"summary":     "The office manager said they are interested and asked for a call on Thursday.",
		"disposition": "callback_requested",
		"extracted": map[string]any{
			"interested": true, "best_callback_time": "Thursday after 2pm", "decision_maker_name": nil,
			"providers": 3, "practice_size": "small", "language": "en",
		},
	}
}

func encode(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func TestValidAnswerIsParsed(t *testing.T) {
	t.Parallel()
	a, err := ParseAnswer(encode(t, goodAnswer()), practiceSpec)
	require.NoError(t, err)
	require.Equal(t, "callback_requested", a.Disposition)
	require.Equal(t, map[string]any{
		"interested": true, "best_callback_time": "Thursday after 2pm", "decision_maker_name": nil,
		"providers": 3.0, "practice_size": "small", "language": "en",
	}, a.Extracted)

	a, err = ParseAnswer(`{"summary":"  Short.  ","disposition":"other"}`, store.AnalysisSpec{})
	require.NoError(t, err)
	require.Equal(t, "Short.", a.Summary)
	require.Nil(t, a.Extracted)
}

func TestSchemaViolationsAreRefusedAndNamed(t *testing.T) {
	t.Parallel()
	edit := func(f func(m map[string]any)) string {
		m := goodAnswer()
		f(m)
		return encode(t, m)
	}
	ex := func(m map[string]any) map[string]any { return m["extracted"].(map[string]any) }
	for name, tc := range map[string]struct {
		content string
		want    string
	}{
		"not JSON":            {`The call went well.`, "not a JSON object"},
		"an array":            {`[1,2]`, "not a JSON object"},
		"null":                {`null`, "not a JSON object: null"},
		"trailing data":       {encode(t, goodAnswer()) + `{"more":1}`, "data after the JSON object"},
		"missing summary":     {edit(func(m map[string]any) { delete(m, "summary") }), "summary: is missing"},
		"empty summary":       {edit(func(m map[string]any) { m["summary"] = "   " }), "summary: is empty"},
		"long summary":        {edit(func(m map[string]any) { m["summary"] = strings.Repeat("é", MaxSummaryLen+1) }), "summary: is 2001 characters"},
		"summary not string":  {edit(func(m map[string]any) { m["summary"] = 5 }), "summary: must be a string"},
		"unknown disposition": {edit(func(m map[string]any) { m["disposition"] = "sold" }), `disposition: "sold" is not one of`},
		"unknown top key":     {edit(func(m map[string]any) { m["confidence"] = 0.9 }), "confidence: is not in the schema"},
		"missing extracted":   {edit(func(m map[string]any) { delete(m, "extracted") }), "extracted: is missing"},
		"extracted not obj":   {edit(func(m map[string]any) { m["extracted"] = "none" }), "extracted: not a JSON object"},
		"missing field":       {edit(func(m map[string]any) { delete(ex(m), "providers") }), "extracted.providers: is missing"},
		"unknown field":       {edit(func(m map[string]any) { ex(m)["budget"] = 1 }), "extracted.budget: is not in the schema"},
		"required null":       {edit(func(m map[string]any) { ex(m)["interested"] = nil }), "extracted.interested: is required but null"},
		"bool as string":      {edit(func(m map[string]any) { ex(m)["interested"] = "yes" }), "extracted.interested: must be true or false"},
		"number as string":    {edit(func(m map[string]any) { ex(m)["providers"] = "three" }), "extracted.providers: must be a number"},
		"infinite number":     {strings.Replace(encode(t, goodAnswer()), `"providers":3`, `"providers":1e999`, 1), "extracted.providers: is not a finite number"},
		"enum outside":        {edit(func(m map[string]any) { ex(m)["practice_size"] = "huge" }), `extracted.practice_size: "huge" is not one of`},
		"required enum empty": {edit(func(m map[string]any) { ex(m)["language"] = "" }), "extracted.language"},
		"string too long":     {edit(func(m map[string]any) { ex(m)["best_callback_time"] = strings.Repeat("a", MaxValueLen+1) }), "extracted.best_callback_time: is 1001 characters"},
		"string as number":    {edit(func(m map[string]any) { ex(m)["decision_maker_name"] = 7 }), "extracted.decision_maker_name: must be a string"},
	} {
		_, err := ParseAnswer(tc.content, practiceSpec)
		require.ErrorIs(t, err, ErrInvalidAnswer, name)
		require.ErrorContains(t, err, tc.want, name)
	}

	_, err := ParseAnswer(`{"summary":"x","disposition":"other","extracted":{}}`, store.AnalysisSpec{})
	require.ErrorContains(t, err, "extracted: is not in the schema", "no extracted object without fields")
}
