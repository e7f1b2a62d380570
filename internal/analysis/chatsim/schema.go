package chatsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Limits of OpenAI's structured outputs that the simulator enforces.
const (
	maxSchemaDepth      = 10
	maxSchemaProperties = 5000
	maxEnumValues       = 1000
)

var schemaNameRe = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

var jsonTypes = []string{"string", "number", "integer", "boolean", "object", "array", "null"}

// unsupportedKeywords are refused in strict mode (OpenAI's "supported
// schemas" list): composition other than anyOf, conditionals, and the
// length and property-count constraints.
var unsupportedKeywords = []string{
	"allOf", "oneOf", "not", "if", "then", "else", "dependentRequired", "dependentSchemas",
	"patternProperties", "propertyNames", "unevaluatedProperties", "unevaluatedItems",
	"minProperties", "maxProperties", "contains", "minContains", "maxContains", "uniqueItems",
	"minLength", "maxLength",
}

// ValidateStrictSchema checks a response_format schema against the rules
// OpenAI applies with "strict": true, naming the offending place like the
// API does.
func ValidateStrictSchema(schema json.RawMessage) error {
	root, err := decodeJSON(schema)
	if err != nil {
		return fmt.Errorf("schema is not valid JSON: %v", err)
	}
	m, ok := root.(map[string]any)
	if !ok {
		return errors.New("schema must be a JSON object")
	}
	if _, ok := m["anyOf"]; ok {
		return errors.New("the root schema must be an object, not anyOf")
	}
	if t, _ := m["type"].(string); t != "object" {
		return errors.New(`the root schema must have type "object"`)
	}
	w := &walker{}
	w.walk(m, "root", 1)
	if w.props > maxSchemaProperties {
		w.fail("root", "has %d properties in all, at most %d allowed", w.props, maxSchemaProperties)
	}
	if w.enums > maxEnumValues {
		w.fail("root", "has %d enum values in all, at most %d allowed", w.enums, maxEnumValues)
	}
	if len(w.probs) > 0 {
		return errors.New(strings.Join(w.probs, "; "))
	}
	return nil
}

type walker struct {
	probs        []string
	props, enums int
}

func (w *walker) fail(path, format string, args ...any) {
	w.probs = append(w.probs, fmt.Sprintf("In context=%s, ", path)+fmt.Sprintf(format, args...))
}

func (w *walker) walk(node any, path string, depth int) {
	m, ok := node.(map[string]any)
	if !ok {
		w.fail(path, "a schema must be an object")
		return
	}
	if depth > maxSchemaDepth {
		w.fail(path, "nesting is deeper than %d levels", maxSchemaDepth)
		return
	}
	for _, k := range unsupportedKeywords {
		if _, ok := m[k]; ok {
			w.fail(path, "'%s' is not permitted", k)
		}
	}
	if _, ok := m["$ref"]; ok {
		return // definitions are not resolved here
	}
	if defs, ok := m["$defs"].(map[string]any); ok {
		for _, k := range sortedKeys(defs) {
			w.walk(defs[k], path+".$defs."+k, depth+1)
		}
	}
	if branches, ok := m["anyOf"].([]any); ok {
		for i, b := range branches {
			w.walk(b, fmt.Sprintf("%s.anyOf[%d]", path, i), depth+1)
		}
		return
	}
	types, ok := typesOf(m["type"])
	if !ok {
		w.fail(path, "'type' must be one of %s, or a list of them", strings.Join(jsonTypes, ", "))
		return
	}
	if slices.Contains(types, "object") {
		w.object(m, path, depth)
	}
	if slices.Contains(types, "array") {
		if items, ok := m["items"]; ok {
			w.walk(items, path+".items", depth+1)
		} else {
			w.fail(path, "'items' is required for an array")
		}
	}
	if enum, ok := m["enum"]; ok {
		values, ok := enum.([]any)
		if !ok || len(values) == 0 {
			w.fail(path, "'enum' must be a non-empty array")
			return
		}
		w.enums += len(values)
		for _, v := range values {
			if !slices.Contains(types, typeOfValue(v)) && !(typeOfValue(v) == "integer" && slices.Contains(types, "number")) {
				w.fail(path, "enum value %v does not match the type %v", v, types)
			}
		}
	}
}

func (w *walker) object(m map[string]any, path string, depth int) {
	props, ok := m["properties"].(map[string]any)
	if !ok {
		w.fail(path, "'properties' is required for an object")
		return
	}
	w.props += len(props)
	if ap, ok := m["additionalProperties"].(bool); !ok || ap {
		w.fail(path, "'additionalProperties' is required to be supplied and to be false")
	}
	req, _ := m["required"].([]any)
	listed := map[string]bool{}
	for _, r := range req {
		if s, ok := r.(string); ok {
			listed[s] = true
			if _, ok := props[s]; !ok {
				w.fail(path, "'required' lists '%s', which is not in properties", s)
			}
		}
	}
	for _, k := range sortedKeys(props) {
		if !listed[k] {
			w.fail(path, "'required' is required to be supplied and to be an array including every key in properties. Missing '%s'", k)
		}
		w.walk(props[k], path+".properties."+k, depth+1)
	}
}

func typesOf(v any) ([]string, bool) {
	switch t := v.(type) {
	case string:
		return []string{t}, slices.Contains(jsonTypes, t)
	case []any:
		var out []string
		for _, e := range t {
			s, ok := e.(string)
			if !ok || !slices.Contains(jsonTypes, s) {
				return nil, false
			}
			out = append(out, s)
		}
		return out, len(out) > 0
	}
	return nil, false
}

func typeOfValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	}
	return "object"
}

// Generate returns a JSON value that satisfies a (strict) schema, for Auto
// replies: every property present, the first enum value, the first
// non-null type.
func Generate(schema json.RawMessage) (json.RawMessage, error) {
	root, err := decodeJSON(schema)
	if err != nil {
		return nil, err
	}
	return json.Marshal(generate(root, "value"))
}

func generate(node any, name string) any {
	m, _ := node.(map[string]any)
	if branches, ok := m["anyOf"].([]any); ok && len(branches) > 0 {
		return generate(branches[0], name)
	}
	if enum, ok := m["enum"].([]any); ok {
		for _, v := range enum {
			if v != nil {
				return v
			}
		}
		return nil
	}
	types, _ := typesOf(m["type"])
	for _, t := range types {
		switch t {
		case "string":
			return "simulated " + name
		case "number", "integer":
			return 1
		case "boolean":
			return true
		case "array":
			return []any{}
		case "object":
			props, _ := m["properties"].(map[string]any)
			out := map[string]any{}
			for k, v := range props {
				out[k] = generate(v, k)
			}
			return out
		}
	}
	return nil
}

func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
