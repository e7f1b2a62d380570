package schemas

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/docshield/voice-worker/tasks"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
)

// compile loads a task's schema with an independent JSON Schema 2020-12
// implementation, as a backend's ajv would.
func compile(t *testing.T, taskType string) *jsonschema.Schema {
	t.Helper()
	b, err := Task(taskType)
	require.NoError(t, err)
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	url := "mem://tasks/" + taskType + ".json"
	require.NoError(t, c.AddResource(url, doc))
	sch, err := c.Compile(url)
	require.NoError(t, err, "%s is a valid JSON Schema", taskType)
	return sch
}

func validate(t *testing.T, sch *jsonschema.Schema, payload string) error {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(payload))
	require.NoError(t, err)
	return sch.Validate(v)
}

// TestTaskSchemasMatchTheGoTypes compares each schema's properties with
// the payload type's JSON fields, at every level: same names, JSON types
// the Go fields decode, required exactly where Go has no omitempty.
func TestTaskSchemasMatchTheGoTypes(t *testing.T) {
	for _, typ := range tasks.Types {
		p, ok := tasks.ForType(typ)
		require.True(t, ok)
		b, err := Task(typ)
		require.NoError(t, err)
		var sch map[string]any
		require.NoError(t, json.Unmarshal(b, &sch))
		requireSchemaMatches(t, typ, sch, reflect.TypeOf(p).Elem())
	}
}

var durationType = reflect.TypeFor[tasks.Duration]()

func jsonType(t reflect.Type) string {
	if t == durationType {
		return "string" // "90s"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int64:
		return "integer"
	case reflect.Bool:
		return "boolean"
	case reflect.Map, reflect.Struct, reflect.Pointer:
		return "object"
	case reflect.Slice:
		return "array"
	}
	panic("no JSON type for " + t.String())
}

func requireSchemaMatches(t *testing.T, path string, sch map[string]any, typ reflect.Type) {
	t.Helper()
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	require.Equal(t, jsonType(typ), sch["type"], "%s: type", path)
	if typ.Kind() == reflect.Map {
		values, ok := sch["additionalProperties"].(map[string]any)
		require.True(t, ok, "%s: additionalProperties is the values' schema", path)
		requireSchemaMatches(t, path+".*", values, typ.Elem())
		return
	}
	if typ.Kind() != reflect.Struct || typ == durationType {
		return
	}
	require.Equal(t, false, sch["additionalProperties"], "%s: unknown fields are refused, as tasks.Unmarshal refuses them", path)
	props, _ := sch["properties"].(map[string]any)
	var names, required []string
	for f := range typ.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		names = append(names, name)
		if !strings.Contains(opts, "omitempty") {
			required = append(required, name)
		}
		sub, ok := props[name].(map[string]any)
		require.True(t, ok, "%s.%s is in the schema", path, name)
		requireSchemaMatches(t, path+"."+name, sub, f.Type)
	}
	require.ElementsMatch(t, names, keys(props), "%s: properties", path)
	got, _ := sch["required"].([]any)
	var gotNames []string
	for _, r := range got {
		gotNames = append(gotNames, r.(string))
	}
	if path == tasks.TypeCallOutbound {
		// attempt_id or inline, exactly one: a oneOf of two required lists.
		require.Len(t, sch["oneOf"], 2)
		return
	}
	require.ElementsMatch(t, required, gotNames, "%s: required", path)
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// The README's task examples validate against the schemas, as they do
// against the Go code (tasks/readme_test.go).
func TestReadmeTaskExamplesMatchTheSchemas(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	blocks := regexp.MustCompile("(?s)```json task\n(.*?)```").FindAllSubmatch(b, -1)
	require.NotEmpty(t, blocks)
	for _, m := range blocks {
		var tf struct {
			Type    string          `json:"type"`
			Payload json.RawMessage `json:"payload"`
		}
		require.NoError(t, json.Unmarshal(m[1], &tf))
		require.NoError(t, validate(t, compile(t, tf.Type), string(tf.Payload)), "%s", m[1])
	}
}

// Type mistakes a backend makes are refused by the schema, as by the
// worker; and what the worker accepts, the schema accepts.
func TestTaskSchemasAgreeWithTheWorker(t *testing.T) {
	for _, c := range []struct {
		typ, payload string
		ok           bool
	}{
		{tasks.TypeCampaignDispatch, `{"campaign_id": "65f1c0ffee0000000000abcd"}`, true},
		{tasks.TypeCampaignDispatch, `{"campaign_id": {"$oid": "65f1c0ffee0000000000abcd"}}`, false},
		{tasks.TypeCampaignDispatch, `{"campaign_id": "65F1C0FFEE0000000000ABCD"}`, false},
		{tasks.TypeCampaignDispatch, `{"campaignId": "65f1c0ffee0000000000abcd"}`, false},
		{tasks.TypeCallAnalyze, `{"attempt_id": 12345678}`, false},
		{tasks.TypeCallOutbound, `{"attempt_id": "65f1c0ffee0000000000c001-2"}`, true},
		{tasks.TypeCallOutbound, `{}`, false},
		{tasks.TypeCallOutbound, `{"attempt_id": "65f1c0ffee0000000000c001-2", "inline": {"attempt_id": "oneoff-0001", "phone": "+14155550100", "instructions": "Hi"}}`, false},
		{tasks.TypeCallOutbound, `{"inline": {"attempt_id": "oneoff-0001", "phone": "+14155550100", "instructions": "Hi", "variables": {"n": 5}}}`, false},
		{tasks.TypeCallOutbound, `{"inline": {"attempt_id": "oneoff-0001", "phone": "4155550100", "instructions": "Hi"}}`, false},
		{tasks.TypeCallOutbound, `{"inline": {"attempt_id": "oneoff-0001", "phone": "+14155550100", "instructions": "Hi", "variables": {"practice name": "x"}}}`, false},
		{tasks.TypeSystemProbe, `{"hold": "2s"}`, true},
		{tasks.TypeSystemProbe, `{"hold": 2}`, false},
		{tasks.TypeSystemProbe, `{}`, true},
	} {
		schemaErr := validate(t, compile(t, c.typ), c.payload)
		p, _ := tasks.ForType(c.typ)
		workerErr := tasks.Unmarshal([]byte(c.payload), p)
		require.Equal(t, c.ok, schemaErr == nil, "schema on %s %s: %v", c.typ, c.payload, schemaErr)
		require.Equal(t, c.ok, workerErr == nil, "worker on %s %s: %v", c.typ, c.payload, workerErr)
	}
}

func TestEveryFileIsServed(t *testing.T) {
	for _, typ := range tasks.Types {
		_, err := Task(typ)
		require.NoError(t, err)
	}
	_, err := Task("call:nothing")
	require.ErrorContains(t, err, `no schema for task type "call:nothing"`)
	for _, coll := range []string{"campaigns", "contacts"} {
		_, err := Collection(coll)
		require.NoError(t, err)
	}
}
