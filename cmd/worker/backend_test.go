package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"gopkg.in/yaml.v3"
)

// mongoEnv is the environment of the MongoDB-only commands: a database of
// its own on the stack's server, dropped when the test ends.
func mongoEnv(t *testing.T) (map[string]string, *store.Store) {
	t.Helper()
	env := map[string]string{"MONGODB_URI": testenv.MongoURI(t), "MONGODB_DATABASE": testenv.UniqueName(t)}
	st := openCallStore(t, env)
	t.Cleanup(func() { _ = st.DB().Drop(context.Background()) })
	return env, st
}

// The release phase runs `worker migrate` as heroku.yml says, as Heroku
// runs it under the image's ENTRYPOINT (the command's words become the
// binary's arguments), twice against FerretDB: both succeed, the second
// finds everything in place.
func TestReleasePhaseMigratesTwice(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../heroku.yml")
	require.NoError(t, err)
	var manifest struct {
		Build struct {
			Docker map[string]string `yaml:"docker"`
		} `yaml:"build"`
		Release struct {
			Image   string   `yaml:"image"`
			Command []string `yaml:"command"`
		} `yaml:"release"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &manifest))
	require.Contains(t, manifest.Build.Docker, manifest.Release.Image, "the release runs an image the build makes")
	require.Len(t, manifest.Release.Command, 1)
	args := strings.Fields(manifest.Release.Command[0])
	require.Equal(t, "/app/bin/worker", args[0], "the binary's path in the Dockerfile's runtime image")

	env, st := mongoEnv(t)
	first := runBin(t, env, args...)
	require.Equal(t, 0, first.code, first.stdout+first.stderr)
	require.Regexp(t, `(?m)^index contacts\.campaign_id_phone\s+created`, first.stdout)
	require.Regexp(t, `(?m)^validator contacts\s+unsupported\s+this server does not enforce validators`, first.stdout)
	second := runBin(t, env, args...)
	require.Equal(t, 0, second.code, second.stdout+second.stderr)
	require.NotRegexp(t, `(?m)^index \S+\s+created`, second.stdout)
	require.Regexp(t, `(?m)^index contacts\.campaign_id_phone\s+exists`, second.stdout)
	missing, err := st.MissingIndexes(t.Context())
	require.NoError(t, err)
	require.Empty(t, missing)

	js := runBin(t, env, "migrate", "--json")
	require.Equal(t, 0, js.code)
	var steps []store.MigrationStep
	require.NoError(t, json.Unmarshal([]byte(js.stdout), &steps))
	require.NotEmpty(t, steps)
}

// runningCampaign writes a running campaign open every day, New York.
func runningCampaign(t *testing.T, st *store.Store) *store.Campaign {
	t.Helper()
	c := &store.Campaign{Name: "Elm Street", Status: store.CampaignRunning, Agent: store.AgentConfig{InstructionsTemplate: "Hello"},
		Schedule: store.Schedule{DefaultTimeZone: "America/New_York", CallingHoursStart: "08:00", CallingHoursEnd: "21:00",
			CallingDays: []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}}}
	require.NoError(t, st.InsertCampaign(t.Context(), c))
	return c
}

func TestCampaignCheckStatsAndTimeout(t *testing.T) {
	t.Parallel()
	env, st := mongoEnv(t)
	ctx := t.Context()
	c := runningCampaign(t, st)
	_, _, err := st.InsertContacts(ctx, []store.Contact{{CampaignID: c.ID, Phone: "+12125550100", Status: store.ContactPending}})
	require.NoError(t, err)
	// As the Node driver writes them by mistake.
	_, err = st.DB().Collection(store.CollContacts).InsertMany(ctx, []any{
		bson.M{"campaign_id": c.ID, "phone": "+12125550101", "status": "pending", "attempts": 0, "next_attempt_at": "2026-12-01T17:30:00.000Z"},
		bson.M{"campaign_id": c.ID.Hex(), "phone": "+12125550102", "status": "pending", "attempts": 0},
		bson.M{"campaign_id": c.ID, "phone": "+12125550103", "status": "Pending", "attempts": 0},
	})
	require.NoError(t, err)

	r := runBin(t, env, "campaign", "check", c.ID.Hex())
	require.Equal(t, 3, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "4 checked, 3 with problems")
	require.Regexp(t, `\+\*{7}0101\s+next_attempt_at: is a string, want date or null\s+never due`, r.stdout)
	require.Regexp(t, `\+\*{7}0102\s+campaign_id: is the campaign's id as a string, want an ObjectId\s+invisible to the worker`, r.stdout)
	require.Regexp(t, `\+\*{7}0103\s+status: "Pending" is not one of`, r.stdout)
	require.NotRegexp(t, `\+1212555010\d`, r.stdout, "numbers masked")

	js := runBin(t, env, "campaign", "check", "--json", c.ID.Hex())
	require.Equal(t, 3, js.code)
	var rep struct {
		ByField map[string]int `json:"problems_by_field"`
	}
	require.NoError(t, json.Unmarshal([]byte(js.stdout), &rep))
	require.Equal(t, map[string]int{"next_attempt_at": 1, "campaign_id": 1, "status": 1}, rep.ByField)

	stats := runBin(t, env, "campaign", "stats", c.ID.Hex())
	require.Equal(t, 0, stats.code, stats.stderr)
	require.Regexp(t, `(?m)^contacts\s+3$`, stats.stdout, "the one with a string campaign_id is not the campaign's")
	require.Contains(t, stats.stdout, "counted at")

	slow := runBin(t, env, "campaign", "stats", "--recount", "--timeout", "1ns", c.ID.Hex())
	require.Equal(t, 1, slow.code)
	require.Contains(t, slow.stderr, "--timeout 1ns")
}

// A number that was called twice: its contact's two attempts with their
// reasons, its one-off call, its do-not-call entry; then the transcript.
func TestContactShowAndTranscript(t *testing.T) {
	t.Parallel()
	env, st := mongoEnv(t)
	ctx := t.Context()
	c := runningCampaign(t, st)
	const number = "+12125550100"
	_, _, err := st.InsertContacts(ctx, []store.Contact{{CampaignID: c.ID, Phone: number, Status: store.ContactPending}})
	require.NoError(t, err)
	contacts, err := st.ContactsByPhone(ctx, number)
	require.NoError(t, err)
	contact := contacts[0]
	end := func(id string, create func() error, status store.CallStatus, reason string, turns ...store.Turn) {
		t.Helper()
		require.NoError(t, create())
		claim, err := st.ClaimAttempt(ctx, id, "test", time.Minute)
		require.NoError(t, err)
		if len(turns) > 0 {
			require.NoError(t, st.Transition(ctx, claim, store.CallInProgress, store.CallFields{}))
			require.NoError(t, st.AppendTurns(ctx, claim, turns...))
		}
		require.NoError(t, st.EndCall(ctx, claim, store.EndRecord{Status: status, At: time.Now(),
			Fields: store.CallFields{Outcome: string(status)}, Details: store.CallDetails{EndReason: reason}}))
	}
	attempt := func(n int) func() error {
		return func() error {
			now := time.Now()
			_, err := st.CreateAttempts(ctx, []*store.Call{{ID: fmt.Sprintf("%s-%d", contact.ID.Hex(), n), CampaignID: c.ID, ContactID: contact.ID,
				Attempt: n, Status: store.CallQueued, CreatedAt: now, QueuedAt: now}})
			return err
		}
	}
	first, second := contact.ID.Hex()+"-1", contact.ID.Hex()+"-2"
	end(first, attempt(1), store.CallNoAnswer, "no answer after 30s")
	end(second, attempt(2), store.CallCompleted, "agent ended the call: completed",
		store.Turn{Role: "agent", Text: "Hi, this is DocShield calling for Elm Street Dental.", StartMS: 400, EndMS: 3000},
		store.Turn{Role: "callee", Text: "Sure, call me back on +1 212 555 0199.", StartMS: 3500, EndMS: 6100})
	end("oneoff-0001", func() error {
		return st.CreateAttempt(ctx, &store.Call{ID: "oneoff-0001", Phone: number, Instructions: "Hi"})
	}, store.CallBusy, "busy")
	_, err = st.SetContactOutcome(ctx, contact.ID, store.ContactOutcome{Status: store.ContactCompleted, Attempt: 2, AttemptID: second, LastOutcome: "completed"}, time.Now())
	require.NoError(t, err)
	require.NoError(t, st.AddDoNotCall(ctx, store.DoNotCall{Phone: number, Source: "operator", CreatedAt: time.Now()}))

	r := runBin(t, env, "contact", "show", "+1 (212) 555-0100")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "number +*******0100: on the do-not-call list since")
	require.Contains(t, r.stdout, "contact "+contact.ID.Hex()+" in campaign "+c.ID.Hex()+" (Elm Street), running")
	require.Contains(t, r.stdout, "status completed, 2 attempts, last outcome completed")
	require.Contains(t, r.stdout, "next attempt: never: the number is on the do-not-call list")
	require.Regexp(t, regexp.QuoteMeta(first)+`\s+no_answer\s+no_answer\s+\d{4}-.*\s+no answer after 30s`, r.stdout)
	require.Regexp(t, regexp.QuoteMeta(second)+`\s+completed\s+completed\s+.*agent ended the call: completed`, r.stdout)
	require.Contains(t, r.stdout, "one-off calls to this number:")
	require.Regexp(t, `oneoff-0001\s+busy\s+busy\s+.*\s+busy`, r.stdout)
	require.NotContains(t, r.stdout, number)

	byID := runBin(t, env, "contact", "show", "--json", contact.ID.Hex())
	require.Equal(t, 0, byID.code, byID.stderr)
	var v struct {
		Phone    string `json:"phone"`
		Contacts []struct {
			Calls []struct {
				ID        string `json:"attempt_id"`
				EndReason string `json:"end_reason"`
			} `json:"calls"`
		} `json:"contacts"`
	}
	require.NoError(t, json.Unmarshal([]byte(byID.stdout), &v))
	require.Equal(t, "+*******0100", v.Phone)
	require.Len(t, v.Contacts[0].Calls, 2)
	require.Equal(t, "no answer after 30s", v.Contacts[0].Calls[0].EndReason)

	none := runBin(t, env, "contact", "show", "+12125550177")
	require.Equal(t, 1, none.code)
	require.Contains(t, none.stderr, "no contact and no call for +*******0177")
	require.Equal(t, 2, runBin(t, env, "contact", "show", "nobody").code)

	tr := runBin(t, env, "call", "show", second, "--transcript")
	require.Equal(t, 0, tr.code, tr.stderr)
	require.Contains(t, tr.stdout, "call "+second+": completed (completed)")
	require.Contains(t, tr.stdout, "[00:00.4] agent:  Hi, this is DocShield calling for Elm Street Dental.")
	require.Contains(t, tr.stdout, "[00:03.5] callee: Sure, call me back on +* *** *** 0199.", "masked as in the logs")
	require.NotContains(t, tr.stdout, "555 0199")
}

// contactsCSV writes a contacts file of n rows (New York numbers).
func contactsCSV(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("phone,name\n")
	for i := range n {
		fmt.Fprintf(&b, "+1212%03d%04d,Practice %d\n", 200+i/10000, i%10000, i)
	}
	path := filepath.Join(t.TempDir(), "contacts.csv")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	return path
}

// Without a terminal (heroku run --no-tty, a pipe), an import prints a
// line at each tenth of each phase on stderr, and its report on stdout.
func TestImportProgressLinesWithoutATerminal(t *testing.T) {
	t.Parallel()
	env, st := mongoEnv(t)
	c := runningCampaign(t, st)
	csv := contactsCSV(t, 5000)
	cmd := binCommand(env, "campaign", "import", "--campaign", c.ID.Hex(), "--file", "-")
	data, err := os.ReadFile(csv)
	require.NoError(t, err)
	var out, errb strings.Builder
	// Not an *os.File, so the binary reads a pipe, as with heroku run.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(string(data)), &out, &errb
	require.NoError(t, cmd.Run(), errb.String())
	require.Contains(t, out.String(), "imported 5000 contacts")
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	require.Regexp(t, `^import: checking rows: 1000 rows, `, lines[0], "a pipe's size is not known")
	require.Contains(t, errb.String(), "import: checking rows: 100% (0.1 of 0.1 MB), 5000 rows, ")
	for pct := 20; pct <= 100; pct += 20 { // one batch of 1000 is a fifth
		require.Contains(t, errb.String(), fmt.Sprintf("import: writing contacts: %d%% (%d of 5000), ", pct, pct*50), "%s", errb.String())
	}
	require.NotContains(t, errb.String(), "\r", "no bar without a terminal")
}

// On a terminal, the import draws a bar. script(1) gives the binary a
// pseudo-terminal as stdin, stdout and stderr.
func TestImportProgressBarOnATerminal(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("script(1) is not installed")
	}
	env, st := mongoEnv(t)
	c := runningCampaign(t, st)
	csv := contactsCSV(t, 3000)
	line := strings.Join([]string{workerBin, "campaign", "import", "--campaign", c.ID.Hex(), "--file", csv}, " ")
	cmd := exec.Command("script", "-qec", line, "/dev/null")
	cmd.Env = binCommand(env).Env
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	s := string(out)
	require.Contains(t, s, "imported 3000 contacts")
	require.Contains(t, s, "\r", "the bar redraws in place")
	require.Contains(t, s, "import: writing contacts")
	require.Regexp(t, `100% \|[█]+\| \(3000/3000`, s)
	require.NotContains(t, s, "import: writing contacts: 20%", "no lines on a terminal")
}
