package analysis

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/docshield/voice-worker/internal/agent"
	"github.com/docshield/voice-worker/internal/store"
)

// ErrInvalidAnswer marks a model answer that does not satisfy the schema
// (or is cut off, refused, or empty). The task is retried: another try
// usually answers properly.
var ErrInvalidAnswer = errors.New("model answer violates the schema")

// Answer is a validated model answer.
type Answer struct {
	Summary     string
	Disposition string
	// Extracted has exactly one key per field of the spec: a string,
	// bool or float64, or nil for an optional field the call did not tell.
	Extracted map[string]any
}

// ParseAnswer validates the model's answer against the schema built from
// spec, itself: the model is an outside party, so its answer is input like
// any other. Strict mode makes a violation rare, not impossible (another
// model behind a compatible API, a truncated answer, a refusal).
func ParseAnswer(content string, spec store.AnalysisSpec) (Answer, error) {
	var probs []string
	add := func(field, format string, args ...any) {
		probs = append(probs, field+": "+fmt.Sprintf(format, args...))
	}
	top, err := decodeObject([]byte(content))
	if err != nil {
		return Answer{}, fmt.Errorf("%w: %v", ErrInvalidAnswer, err)
	}
	want := []string{"summary", "disposition"}
	if len(spec.Extraction) > 0 {
		want = append(want, "extracted")
	}
	checkKeys(top, want, "", add)

	var a Answer
	if s, ok := stringValue(top["summary"], "summary", add); ok {
		a.Summary = strings.TrimSpace(s)
		switch n := utf8.RuneCountInString(a.Summary); {
		case n == 0:
			add("summary", "is empty")
		case n > MaxSummaryLen:
			add("summary", "is %d characters, at most %d allowed", n, MaxSummaryLen)
		}
	}
	if s, ok := stringValue(top["disposition"], "disposition", add); ok {
		if !slices.Contains(agent.Dispositions, s) {
			add("disposition", "%q is not one of %s", truncate(s, 40), strings.Join(agent.Dispositions, ", "))
		}
		a.Disposition = s
	}
	if len(spec.Extraction) > 0 {
		a.Extracted = parseExtracted(top["extracted"], spec.Extraction, add)
	}
	if len(probs) > 0 {
		sort.Strings(probs)
		return Answer{}, fmt.Errorf("%w: %s", ErrInvalidAnswer, strings.Join(probs, "; "))
	}
	return a, nil
}

func parseExtracted(raw json.RawMessage, fields []store.ExtractionField, add func(string, string, ...any)) map[string]any {
	if raw == nil {
		return nil // missing: reported by checkKeys
	}
	m, err := decodeObject(raw)
	if err != nil {
		add("extracted", "%v", err)
		return nil
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	checkKeys(m, names, "extracted.", add)
	out := make(map[string]any, len(fields))
	for _, f := range fields {
		at := "extracted." + f.Name
		v, present := m[f.Name]
		if !present {
			continue
		}
		if isNull(v) {
			if f.Required {
				add(at, "is required but null")
			}
			out[f.Name] = nil
			continue
		}
		switch f.Type {
		case TypeString, TypeEnum:
			s, ok := stringValue(v, at, add)
			if !ok {
				continue
			}
			if f.Type == TypeString {
				s = strings.TrimSpace(s)
			}
			switch {
			case f.Type == TypeEnum && !slices.Contains(f.Enum, s):
				add(at, "%q is not one of the field's enum values", truncate(s, 40))
			case f.Required && s == "":
				add(at, "is required but empty")
			case utf8.RuneCountInString(s) > MaxValueLen:
				add(at, "is %d characters, at most %d allowed", utf8.RuneCountInString(s), MaxValueLen)
			}
			out[f.Name] = s
		case TypeBoolean:
			var b bool
			if err := json.Unmarshal(v, &b); err != nil {
				add(at, "must be true or false")
				continue
			}
			out[f.Name] = b
		case TypeNumber:
			var n json.Number
			if err := json.Unmarshal(v, &n); err != nil {
				add(at, "must be a number")
				continue
			}
			x, err := n.Float64()
			if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
				add(at, "is not a finite number")
				continue
			}
			out[f.Name] = x
		}
	}
	return out
}

// decodeObject reads one JSON object and nothing after it.
func decodeObject(b []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	if m == nil {
		return nil, errors.New("not a JSON object: null")
	}
	if dec.More() {
		return nil, errors.New("data after the JSON object")
	}
	return m, nil
}

// checkKeys reports missing and unknown keys.
func checkKeys(m map[string]json.RawMessage, want []string, prefix string, add func(string, string, ...any)) {
	for _, k := range want {
		if _, ok := m[k]; !ok {
			add(prefix+k, "is missing")
		}
	}
	for k := range m {
		if !slices.Contains(want, k) {
			add(prefix+truncate(k, 40), "is not in the schema")
		}
	}
}

func stringValue(v json.RawMessage, at string, add func(string, string, ...any)) (string, bool) {
	if v == nil {
		return "", false // missing: reported by checkKeys
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		add(at, "must be a string")
		return "", false
	}
	return s, true
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }
