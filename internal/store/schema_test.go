package store

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// campaignContract is everything the worker reads from a campaign
// document: Campaign, plus the agent settings and the analysis spec that
// are read on their own.
type campaignContract struct {
	Campaign `bson:",inline"`
	Agent    struct {
		AgentConfig       `bson:",inline"`
		AgentCallSettings `bson:",inline"`
	} `bson:"agent"`
	Analysis AnalysisSpec `bson:"analysis"`
}

// decodable lists the BSON types the Go driver decodes into a Go type,
// and the one the worker writes.
func decodable(t reflect.Type) (accepts []string, writes string) {
	switch {
	case t == reflect.TypeFor[time.Time]():
		return []string{"date", "null"}, "date"
	case t == reflect.TypeFor[bson.ObjectID]():
		return []string{"objectId"}, "objectId"
	}
	switch t.Kind() {
	case reflect.String:
		return []string{"string"}, "string"
	case reflect.Int, reflect.Int32, reflect.Int64:
		return []string{"int", "long", "double"}, "int"
	case reflect.Bool:
		return []string{"bool"}, "bool"
	case reflect.Slice:
		return []string{"array", "null"}, "array"
	case reflect.Map, reflect.Struct:
		return []string{"object", "null"}, "object"
	}
	panic("no BSON mapping for " + t.String())
}

// bsonFields lists a struct's fields by BSON name, inline fields
// flattened, later fields replacing earlier ones of the same name.
func bsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("bson"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range bsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// requireSchemaMatchesType checks a schema node against a Go type, at
// every level: the same field names, only BSON types the Go type decodes,
// and the type the worker writes among them.
func requireSchemaMatchesType(t *testing.T, path string, n *schemaNode, typ reflect.Type) {
	t.Helper()
	accepts, writes := decodable(typ)
	types := n.BSONType
	if len(types) == 0 {
		require.NotEmpty(t, n.Enum, "%s: a bsonType or an enum", orRoot(path))
		types = []string{"string"}
	}
	for _, bt := range types {
		require.Contains(t, accepts, bt, "%s: the schema allows %s, which %s does not decode", orRoot(path), bt, typ)
	}
	require.Contains(t, types, writes, "%s: the worker writes %s, the schema must allow it", orRoot(path), writes)
	switch typ.Kind() {
	case reflect.Struct:
		if typ == reflect.TypeFor[time.Time]() || typ == reflect.TypeFor[bson.ObjectID]() {
			return
		}
		fields := bsonFields(typ)
		require.ElementsMatch(t, sortedKeys(fields), sortedKeys(n.Properties), "%s: fields", orRoot(path))
		for name, ft := range fields {
			requireSchemaMatchesType(t, join(path, name), n.Properties[name], ft)
		}
	case reflect.Slice:
		require.NotNil(t, n.Items, "%s: items", path)
		requireSchemaMatchesType(t, path+"[]", n.Items, typ.Elem())
	case reflect.Map:
		values := n.patterns
		require.Len(t, values, 1, "%s: one pattern for the names", path)
		requireSchemaMatchesType(t, path+".*", values[0].schema, typ.Elem())
	}
}

func TestSchemasMatchTheGoTypes(t *testing.T) {
	t.Parallel()
	for coll, typ := range map[string]reflect.Type{
		CollContacts:  reflect.TypeFor[Contact](),
		CollCampaigns: reflect.TypeFor[campaignContract](),
	} {
		sch, err := LoadSchema(coll)
		require.NoError(t, err)
		requireSchemaMatchesType(t, "", sch.root, typ)
	}
	contacts, err := LoadSchema(CollContacts)
	require.NoError(t, err)
	require.ElementsMatch(t, ContactStatuses, enumOf[ContactStatus](contacts.root.Properties["status"]))
	campaigns, err := LoadSchema(CollCampaigns)
	require.NoError(t, err)
	require.ElementsMatch(t, CampaignStatuses, enumOf[CampaignStatus](campaigns.root.Properties["status"]))
}

func enumOf[S ~string](n *schemaNode) []S {
	var out []S
	for _, e := range n.Enum {
		out = append(out, S(e.(string)))
	}
	return out
}

func mustRaw(t *testing.T, v any) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(v)
	require.NoError(t, err)
	return b
}

// TestValidatorRefusesTheBackendsMistakes is the refusal MongoDB's
// validator makes, evaluated in Go on the same schema document, since the
// test server (FerretDB v1.24) answers collMod with NotImplemented.
func TestValidatorRefusesTheBackendsMistakes(t *testing.T) {
	t.Parallel()
	sch, err := LoadSchema(CollContacts)
	require.NoError(t, err)
	campaign := bson.NewObjectID()
	var problems [][]Violation
	for _, d := range nodeMistakes(campaign) {
		problems = append(problems, sch.Check(mustRaw(t, d)))
	}
	require.Empty(t, problems[0], "the well-typed contact is accepted")
	require.Equal(t, []Violation{{"next_attempt_at", "is a string, want date or null"}}, problems[1])
	require.Equal(t, []Violation{{"campaign_id", "is a string, want objectId"}}, problems[2])
	require.Equal(t, []Violation{{"status", `"queued" is not one of pending, calling, completed, exhausted, do_not_call`}}, problems[3])
	require.Equal(t, []Violation{{"attempts", "is a string, want int or long or double"}}, problems[4])
	require.Empty(t, problems[5], "a whole double, as mongosh writes numbers")

	bad := sch.Check(mustRaw(t, bson.D{
		{Key: "campaign_id", Value: campaign}, {Key: "phone", Value: "4155550100"}, {Key: "status", Value: "pending"},
		{Key: "attempts", Value: 1.5}, {Key: "variables", Value: bson.D{{Key: "doctor", Value: int32(5)}, {Key: "bad name", Value: "x"}}},
	}))
	require.ElementsMatch(t, []Violation{
		{"phone", `does not match ^\+[1-9][0-9]{6,14}$`},
		{"attempts", "is 1.5, want a multiple of 1"},
		{"variables.doctor", "is an int, want string"},
		{"variables.bad name", "is not an allowed field name"},
	}, bad)
	require.Equal(t, []Violation{{"campaign_id", "is missing"}, {"phone", "is missing"}, {"status", "is missing"}, {"attempts", "is missing"}},
		sch.Check(mustRaw(t, bson.D{})))
}

func TestValidatorCommands(t *testing.T) {
	t.Parallel()
	collMod, create, err := ValidatorCommands(CollContacts)
	require.NoError(t, err)
	require.Equal(t, "contacts", collMod[0].Value)
	require.Equal(t, "collMod", collMod[0].Key)
	require.Equal(t, "create", create[0].Key)
	opts := map[string]any{}
	for _, e := range collMod[1:] {
		opts[e.Key] = e.Value
	}
	require.Equal(t, "moderate", opts["validationLevel"])
	require.Equal(t, "error", opts["validationAction"])
	v := opts["validator"].(bson.D)
	require.Equal(t, "$jsonSchema", v[0].Key)
	js := v[0].Value.(bson.D)
	require.True(t, slices.ContainsFunc(js, func(e bson.E) bool { return e.Key == "required" }))
	require.Equal(t, collMod[1:], create[1:], "create sets the same validator")
}

// TestWorkerWritesPassTheValidators writes campaigns and contacts through
// every store method that writes them, reads them back from the server and
// checks them against the validators, so applying the validators breaks
// none of the worker's own writes.
func TestWorkerWritesPassTheValidators(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	c := &Campaign{Name: "c", Status: CampaignScheduled, Agent: AgentConfig{InstructionsTemplate: "Hi {{name}}", Tools: []string{"end_call"}},
		Schedule: Schedule{DefaultTimeZone: "America/New_York", CallingHoursStart: "09:00", CallingHoursEnd: "24:00", CallingDays: []string{"mon"},
			WindowStart: t0}, Retry: RetryPolicy{MaxAttempts: 3, RetryOutcomes: []string{"busy"}, BackoffSeconds: []int{60}}}
	require.NoError(t, s.InsertCampaign(ctx, c))
	_, err := s.SetCampaignStatus(ctx, c.ID, []CampaignStatus{CampaignScheduled}, CampaignRunning, t0)
	require.NoError(t, err)
	cs := insertContacts(t, s,
		Contact{CampaignID: c.ID, Phone: "+14155550100", Status: ContactPending, Name: "n", TimeZone: "America/Los_Angeles",
			Variables: map[string]string{"doctor": "Patel"}, CreatedAt: t0, UpdatedAt: t0},
		Contact{CampaignID: c.ID, Phone: "+14155550101", Status: ContactPending},
		Contact{CampaignID: c.ID, Phone: "+14155550102", Status: ContactPending},
		Contact{CampaignID: c.ID, Phone: "+14155550103", Status: ContactPending},
	)
	_, err = s.SetContactOutcome(ctx, cs[0].ID, ContactOutcome{Status: ContactPending, Attempt: 1, AttemptID: "x-1", NextAttemptAt: t0, LastOutcome: "busy"}, t0)
	require.NoError(t, err)
	_, err = s.SetContactOutcome(ctx, cs[1].ID, ContactOutcome{Status: ContactCompleted, Attempt: 1, LastOutcome: "completed"}, t0)
	require.NoError(t, err)
	require.NoError(t, s.FinishPendingContacts(ctx, []bson.ObjectID{cs[2].ID}, ContactDoNotCall, "do_not_call", t0))
	_, err = s.ExhaustPendingContacts(ctx, c.ID, t0)
	require.NoError(t, err)

	for coll, n := range map[string]int{CollCampaigns: 1, CollContacts: 4} {
		sch, err := LoadSchema(coll)
		require.NoError(t, err)
		cur, err := s.db.Collection(coll).Find(ctx, bson.D{})
		require.NoError(t, err)
		seen := 0
		for cur.Next(ctx) {
			seen++
			require.Empty(t, sch.Check(cur.Current), "%s %s", coll, cur.Current)
		}
		require.Equal(t, n, seen)
	}
}
