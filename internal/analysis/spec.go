package analysis

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/docshield/voice-worker/internal/agent"
	"github.com/docshield/voice-worker/internal/store"
)

// Field types of an extraction spec.
const (
	TypeString  = "string"
	TypeBoolean = "boolean"
	TypeNumber  = "number"
	TypeEnum    = "enum"
)

// Limits on a campaign's analysis spec. They keep the schema well inside
// OpenAI's structured-output limits and the prompt small.
const (
	MaxFields          = 50
	MaxDescriptionLen  = 1000
	MaxInstructionsLen = 4000
	MaxEnumValues      = 50
	MaxEnumValueLen    = 200
)

// Limits on the model's answer; longer values are schema violations.
const (
	MaxSummaryLen = 2000
	MaxValueLen   = 1000
)

// SchemaName names the response format sent to the model.
const SchemaName = "call_analysis"

// fieldNameRe keeps names usable as JSON keys, BSON field names (no dots,
// no $) and identifiers in the backend's code.
var fieldNameRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// ErrInvalidSpec marks a campaign analysis spec that can never work until
// the campaign is fixed.
var ErrInvalidSpec = errors.New("invalid analysis spec")

// ValidateSpec checks a campaign's analysis subdocument, naming each
// problem's field as the backend writes it (analysis.extraction[2].name).
func ValidateSpec(s store.AnalysisSpec) error {
	var probs []string
	add := func(field, format string, args ...any) {
		probs = append(probs, "analysis."+field+": "+fmt.Sprintf(format, args...))
	}
	if n := utf8.RuneCountInString(s.Instructions); n > MaxInstructionsLen {
		add("instructions", "is %d characters, at most %d allowed", n, MaxInstructionsLen)
	}
	if len(s.Extraction) > MaxFields {
		add("extraction", "has %d fields, at most %d allowed", len(s.Extraction), MaxFields)
	}
	seen := map[string]bool{}
	for i, f := range s.Extraction {
		at := fmt.Sprintf("extraction[%d]", i)
		switch {
		case !fieldNameRe.MatchString(f.Name):
			add(at+".name", "%q must be lowercase letters, digits and _, starting with a letter, at most 64 characters", truncate(f.Name, 70))
		case seen[f.Name]:
			add(at+".name", "%q is used by an earlier field", f.Name)
		}
		seen[f.Name] = true
		if n := utf8.RuneCountInString(f.Description); n > MaxDescriptionLen {
			add(at+".description", "is %d characters, at most %d allowed", n, MaxDescriptionLen)
		}
		switch f.Type {
		case TypeString, TypeBoolean, TypeNumber:
			if len(f.Enum) > 0 {
				add(at+".enum", "is only allowed with type %q", TypeEnum)
			}
		case TypeEnum:
			validateEnum(f.Enum, func(format string, args ...any) { add(at+".enum", format, args...) })
		default:
			add(at+".type", "%q must be one of %s, %s, %s, %s", truncate(f.Type, 40), TypeString, TypeBoolean, TypeNumber, TypeEnum)
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidSpec, strings.Join(probs, "; "))
	}
	return nil
}

func validateEnum(values []string, fail func(format string, args ...any)) {
	if len(values) == 0 || len(values) > MaxEnumValues {
		fail("must list 1 to %d values, has %d", MaxEnumValues, len(values))
	}
	seen := map[string]bool{}
	for j, v := range values {
		switch {
		case strings.TrimSpace(v) == "" || utf8.RuneCountInString(v) > MaxEnumValueLen:
			fail("value %d must be 1 to %d characters", j, MaxEnumValueLen)
		case seen[v]:
			fail("value %q repeats", truncate(v, 40))
		}
		seen[v] = true
	}
}

// obj is a JSON object that keeps its keys in order: the model writes its
// answer in schema order, and the summary should come first.
type obj []kv

type kv struct {
	k string
	v any
}

func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(e.k)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(e.v)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Schema is the strict JSON schema of the model's answer for a (valid)
// spec: summary, disposition, and, when the spec has fields, an extracted
// object with one property per field. OpenAI's strict mode wants every
// property listed in required and no additional properties, so optional
// fields are nullable instead of absent.
func Schema(s store.AnalysisSpec) (json.RawMessage, error) {
	if err := ValidateSpec(s); err != nil {
		return nil, err
	}
	props := obj{
		{"summary", obj{{"type", "string"}, {"description", fmt.Sprintf(
			"What happened on the call in 2 to 4 plain sentences, third person, at most %d characters. No phone numbers.", MaxSummaryLen)}}},
		{"disposition", obj{{"type", "string"}, {"enum", agent.Dispositions}, {"description", dispositionHelp}}},
	}
	required := []string{"summary", "disposition"}
	if len(s.Extraction) > 0 {
		fields := make(obj, 0, len(s.Extraction))
		names := make([]string, 0, len(s.Extraction))
		for _, f := range s.Extraction {
			fields = append(fields, kv{f.Name, fieldSchema(f)})
			names = append(names, f.Name)
		}
		props = append(props, kv{"extracted", obj{
			{"type", "object"},
			{"description", "Values taken from the call. Use null when the call did not tell."},
			{"properties", fields}, {"required", names}, {"additionalProperties", false},
		}})
		required = append(required, "extracted")
	}
	return json.Marshal(obj{
		{"type", "object"}, {"properties", props}, {"required", required}, {"additionalProperties", false},
	})
}

func fieldSchema(f store.ExtractionField) obj {
	typ := f.Type
	if typ == TypeEnum {
		typ = "string"
	}
	var o obj
	if f.Required {
		o = obj{{"type", typ}}
	} else {
		o = obj{{"type", []string{typ, "null"}}}
	}
	if f.Type == TypeEnum {
		values := make([]any, 0, len(f.Enum)+1)
		for _, v := range f.Enum {
			values = append(values, v)
		}
		if !f.Required {
			values = append(values, nil)
		}
		o = append(o, kv{"enum", values})
	}
	desc := f.Description
	if f.Type == TypeString {
		desc = strings.TrimSpace(desc + fmt.Sprintf(" (at most %d characters)", MaxValueLen))
	}
	if desc != "" {
		o = append(o, kv{"description", desc})
	}
	return o
}

const dispositionHelp = "How the call went: interested (wants to go ahead or learn more), " +
	"not_interested (declined), callback_requested (asked to be called another time), " +
	"wrong_number (not the intended person or practice), do_not_call (asked not to be called again), " +
	"other (anything else, including no real conversation)."

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}
