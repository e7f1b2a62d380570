package campaign

import (
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/docshield/voice-worker/internal/phone"
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

// requireSameFields checks that every field the document names is one the
// Go type stores, at every level, so the doc cannot show a field the
// worker would silently drop.
func requireSameFields(t *testing.T, doc string, decoded any) {
	t.Helper()
	var fromDoc, fromType bson.M
	require.NoError(t, bson.UnmarshalExtJSON([]byte(doc), false, &fromDoc))
	raw, err := bson.Marshal(decoded)
	require.NoError(t, err)
	require.NoError(t, bson.Unmarshal(raw, &fromType))
	var walk func(path string, a, b map[string]any)
	walk = func(path string, a, b map[string]any) {
		for k, v := range a {
			require.Contains(t, b, k, "docs/CAMPAIGNS.md field %s%s is not in the Go type", path, k)
			if sub, ok := asMap(v); ok && k != "variables" {
				other, ok := asMap(b[k])
				require.True(t, ok, "%s%s", path, k)
				walk(path+k+".", sub, other)
			}
		}
	}
	walk("", fromDoc, fromType)
	require.Equal(t, slices.Sorted(maps.Keys(fromType)), slices.Sorted(maps.Keys(fromDoc)),
		"the example shows every top-level field")
}

// asMap reads a decoded subdocument, whichever form the decoder chose.
func asMap(v any) (map[string]any, bool) {
	switch d := v.(type) {
	case bson.M:
		return d, true
	case bson.D:
		m := make(map[string]any, len(d))
		for _, e := range d {
			m[e.Key] = e.Value
		}
		return m, true
	}
	return nil, false
}

// requirePassesValidator checks a documented example against its
// collection's validator (schemas/mongodb), as MongoDB would on insert.
func requirePassesValidator(t *testing.T, coll, doc string) {
	t.Helper()
	var raw bson.Raw
	require.NoError(t, bson.UnmarshalExtJSON([]byte(doc), false, &raw))
	sch, err := store.LoadSchema(coll)
	require.NoError(t, err)
	require.Empty(t, sch.Check(raw), "the documented %s passes its validator", coll)
}

func TestDocumentedCampaignIsValid(t *testing.T) {
	t.Parallel()
	doc := docBlock(t, "campaign")
	var c store.Campaign
	require.NoError(t, bson.UnmarshalExtJSON([]byte(doc), false, &c))
	requireSameFields(t, doc, c)
	requirePassesValidator(t, store.CollCampaigns, doc)
	withAnalysis := strings.TrimSuffix(strings.TrimSpace(doc), "}") + "," +
		strings.TrimPrefix(strings.TrimSpace(docBlock(t, "analysis")), "{")
	requirePassesValidator(t, store.CollCampaigns, withAnalysis)
	require.NoError(t, ValidateCampaign(&c))
	p, err := planFor(&c)
	require.NoError(t, err)
	require.True(t, p.policy.Retries(OutcomeVoicemail))
	require.Equal(t, 10, p.limit)
}

func TestDocumentedContactIsValid(t *testing.T) {
	t.Parallel()
	doc := docBlock(t, "contact")
	var c store.Contact
	require.NoError(t, bson.UnmarshalExtJSON([]byte(doc), false, &c))
	requireSameFields(t, doc, c)
	requirePassesValidator(t, store.CollContacts, doc)
	require.True(t, phone.Valid(c.Phone))
	_, err := LoadZone(c.TimeZone)
	require.NoError(t, err)
	require.Equal(t, AttemptID(c.ID, c.Attempts), c.LastAttemptID)
	_, err = ParseOutcome(c.LastOutcome)
	require.NoError(t, err)
}

func TestDocumentedStatsSnapshot(t *testing.T) {
	t.Parallel()
	doc := docBlock(t, "stats")
	var snap store.StatsSnapshot
	require.NoError(t, bson.UnmarshalExtJSON([]byte(doc), false, &snap))
	requireSameFields(t, doc, snap)
	require.Equal(t, snap.Dialed, snap.Counters.Attempts)
	sum := 0
	for _, n := range snap.ContactsByStatus {
		sum += n
	}
	require.Equal(t, snap.Contacts, sum)
}

func TestDocumentedCSVImports(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docs/CAMPAIGNS.md")
	require.NoError(t, err)
	m := regexp.MustCompile("(?s)```csv\n(.*?)```").FindSubmatch(b)
	require.NotNil(t, m)
	rows, bad, err := ParseCSV(strings.NewReader(string(m[1])))
	require.NoError(t, err)
	require.Empty(t, bad)
	require.Len(t, rows, 3)
	require.Equal(t, "+442071838750", rows[1].Phone)
	require.Empty(t, rows[2].TimeZone, "the campaign's default zone")
}
