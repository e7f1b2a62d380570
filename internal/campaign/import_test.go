package campaign

import (
	"bytes"
	"strings"
	"testing"

	"github.com/docshield/voice-worker/internal/agent"
	"github.com/docshield/voice-worker/internal/phone"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/tasks"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
)

const contactsCSV = "\uFEFFPhone,Name,Time_Zone,practice,doctor\n" + // line 1, with Excel's BOM
	"+1 (415) 555-0100,Elm Street Dental,America/Los_Angeles,Elm Street,Patel\n" + // 2 good
	"4155550101,No Plus,America/Los_Angeles,x,y\n" + // 3 bad: not E.164
	"+14155550102,Bad Zone,Mars/Olympus_Mons,x,y\n" + // 4 bad: zone
	"+14155550100,Again,,x,y\n" + // 5 bad: repeats line 2
	"+442071838750,\"Multi\nLine Practice\",Europe/London,,\n" + // 6-7 good, no variables
	"+919876543210,Too Few\n" + // 8 bad: field count
	"+61299990000,Sydney Clinic,Australia/Sydney,\"Harbour, Clinic\",Ng\n" + // 9 good
	",,,,\n" + // 10 bad: empty phone
	"+14155550103,\"Bad \"quote\",,,\n" + // 11 bad: csv syntax
	"+14155550104,Default Zone,,p,d\n" // 12 good, campaign default zone

func TestParseCSV(t *testing.T) {
	t.Parallel()
	rows, bad, err := ParseCSV(strings.NewReader(contactsCSV))
	require.NoError(t, err)

	require.Equal(t, []Row{
		{Line: 2, Phone: "+14155550100", Name: "Elm Street Dental", TimeZone: "America/Los_Angeles",
			Variables: map[string]string{"practice": "Elm Street", "doctor": "Patel"}},
		{Line: 6, Phone: "+442071838750", Name: "Multi\nLine Practice", TimeZone: "Europe/London"},
		{Line: 9, Phone: "+61299990000", Name: "Sydney Clinic", TimeZone: "Australia/Sydney",
			Variables: map[string]string{"practice": "Harbour, Clinic", "doctor": "Ng"}},
		{Line: 12, Phone: "+14155550104", Name: "Default Zone", Variables: map[string]string{"practice": "p", "doctor": "d"}},
	}, rows)

	lines := map[int]string{}
	for _, b := range bad {
		lines[b.Line] = b.Reason
		for _, number := range []string{"5550101", "5550102", "5550103"} {
			require.NotContains(t, b.Error(), number, "row errors never quote the number")
		}
	}
	require.Len(t, bad, 6, "%v", bad)
	require.Contains(t, lines[3], "phone: not an E.164 number")
	require.Contains(t, lines[4], `time_zone: time zone "Mars/Olympus_Mons"`)
	require.Equal(t, "phone repeats line 2", lines[5])
	require.Equal(t, "has 2 fields, the header has 5", lines[8])
	require.Equal(t, "phone is empty", lines[10])
	require.Contains(t, lines[11], "quote")
}

func TestParseCSVHeaderProblemsRefuseTheFile(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                              "the file is empty",
		"name,time_zone\n+14155550100,": "no phone column",
		"phone,name,Name\n":             `"Name" appears twice`,
		"phone,tel,phone_number\n":      `"phone_number" appears twice`,
		"phone,first name\n":            `column 2: "first name" is not a variable name`,
		"phone,9lives\n":                `"9lives" is not a variable name`,
	} {
		_, _, err := ParseCSV(strings.NewReader(in))
		require.ErrorContains(t, err, want, "%q", in)
	}
	many := "phone"
	for i := range tasks.MaxVariables + 1 {
		many += ",v" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	_, _, err := ParseCSV(strings.NewReader(many + "\n"))
	require.ErrorContains(t, err, "variable columns")
}

func TestParseCSVLongValues(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", tasks.MaxVariableLen+1)
	in := "phone,name,note\n+14155550100," + strings.Repeat("n", MaxNameLen+1) + ",ok\n+14155550101,ok," + long + "\n+14155550102,ok,ok\n"
	rows, bad, err := ParseCSV(strings.NewReader(in))
	require.NoError(t, err)
	require.Len(t, rows, 1)
	require.Equal(t, 4, rows[0].Line)
	require.Equal(t, []RowError{
		{Line: 2, Reason: "name is 201 characters, at most 200 allowed"},
		{Line: 3, Reason: "note is 501 characters, at most 500 allowed"},
	}, bad)
}

func TestImportReportText(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	require.NoError(t, ImportReport{CampaignID: "c1", Imported: 2, AlreadyPresent: 1,
		Bad: []RowError{{Line: 3, Reason: "phone is empty"}}}.WriteText(&b))
	require.Equal(t, "campaign c1: imported 2 contacts, 1 already present, 1 bad rows skipped\n  line 3: phone is empty\n", b.String())
}

func FuzzParseCSV(f *testing.F) {
	f.Add([]byte(contactsCSV))
	f.Add([]byte("phone,tz,first_name\n+14155550100,Asia/Kolkata,Ann\n\"+1415\",UTC,\"x\"\"y\"\n"))
	f.Add([]byte("phone\n\"unterminated\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		rows, bad, err := ParseCSV(bytes.NewReader(in))
		if err != nil {
			require.Nil(t, rows)
			return
		}
		seen := map[string]bool{}
		lines := map[int]bool{}
		for _, r := range rows {
			require.True(t, phone.Valid(r.Phone), "row %d phone", r.Line)
			require.False(t, seen[r.Phone], "phone repeated in good rows")
			seen[r.Phone] = true
			require.Greater(t, r.Line, 1)
			require.False(t, lines[r.Line], "two rows on line %d", r.Line)
			lines[r.Line] = true
			if r.TimeZone != "" {
				_, err := LoadZone(r.TimeZone)
				require.NoError(t, err)
			}
			require.LessOrEqual(t, len(r.Variables), tasks.MaxVariables)
			for k, v := range r.Variables {
				require.Regexp(t, `^[A-Za-z_][A-Za-z0-9_]{0,63}$`, k)
				require.NotEmpty(t, v)
			}
			// What the importer hands on must pass the task contract too,
			// where variables end up for the agent's template. (Whether the
			// number has a time zone is Import's check, not ParseCSV's.)
			call := tasks.CallOutbound{Inline: &tasks.InlineCall{
				AttemptID: "fuzz-attempt", Phone: "+14155550100", Instructions: "x", Variables: r.Variables}}
			require.NoError(t, call.Validate())
		}
		for _, b := range bad {
			require.GreaterOrEqual(t, b.Line, 1)
			require.NotEmpty(t, b.Reason)
		}
	})
}

// The incident: a value of 300 × "é" imported fine (import counted
// characters, render bytes) and every attempt then failed before dialing.
// Now one rule counts, and a row that could never be called (any reason
// the prompt would not render, no known zone, hours that never meet the
// law's where the number rings) is refused at import with its line.
func TestImportRefusesRowsThatCouldNeverBeCalled(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ctx := t.Context()
	c := e.campaign(func(c *store.Campaign) {
		c.Agent.InstructionsTemplate = "Confirm Dr. {{doctor}}'s appointment. Note: {{note}}"
		c.Agent.Greeting = "Hello from {{practice}}."
	})
	_, err := e.st.DB().Collection(store.CollCampaigns).UpdateOne(ctx, bson.D{{Key: "_id", Value: c.ID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "agent.voicemail_message", Value: "Please call {{callback}}."}}}})
	require.NoError(t, err)
	accented := strings.Repeat("é", 300)
	csv := "phone,time_zone,doctor,note,practice,callback\n" +
		"+12125550100,,Patel," + accented + ",Elm,+12125550000\n" + // 2 good: 300 characters, 600 bytes
		"+12125550101,,Patel," + strings.Repeat("é", 501) + ",Elm,x\n" + // 3 bad: 501 characters
		"+12125550102,,,n,Elm,x\n" + // 4 bad: no doctor for the instructions
		"+12125550103,,Patel,n,,x\n" + // 5 bad: no practice for the greeting
		"+12125550104,,Patel,n,Elm,\n" + // 6 bad: no callback for the voicemail message
		"+15551234567,,Patel,n,Elm,x\n" + // 7 bad: no zone for the number
		"+14155550100,Asia/Tokyo,Patel,n,Elm,x\n" + // 8 good: Tokyo's 09:00-18:00 meets 08:00-21:00 in Los Angeles
		"+12125550105,Asia/Bangkok,Patel,n,Elm,x\n" // 9 bad: 09:00-18:00 Bangkok is night in New York
	c.Schedule.CallingHoursStart, c.Schedule.CallingHoursEnd = "09:00", "18:00"
	_, err = e.st.DB().Collection(store.CollCampaigns).UpdateOne(ctx, bson.D{{Key: "_id", Value: c.ID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "schedule", Value: c.Schedule}}}})
	require.NoError(t, err)

	rep, err := e.svc.Import(ctx, c.ID, strings.NewReader(csv), false)
	require.NoError(t, err)
	require.Equal(t, 2, rep.Imported, "%v", rep.Bad)
	reasons := map[int]string{}
	for _, b := range rep.Bad {
		reasons[b.Line] = b.Reason
	}
	require.Len(t, reasons, 6, "%v", rep.Bad)
	require.Equal(t, "note is 501 characters, at most 500 allowed", reasons[3])
	require.Contains(t, reasons[4], "could never be called: instructions: template variables without a value: doctor")
	require.Contains(t, reasons[5], "could never be called: greeting: template variables without a value: practice")
	require.Contains(t, reasons[6], "could never be called: voicemail message: template variables without a value: callback")
	require.Contains(t, reasons[7], "phone: no time zone is known for this number")
	require.Contains(t, reasons[9], "never fall inside 08:00–21:00 where the number rings")
	for _, b := range rep.Bad {
		require.NotContains(t, b.Error(), "555", "row errors never quote the number")
	}

	// What was imported renders as the call flow renders it.
	cur, err := e.st.DB().Collection(store.CollContacts).Find(ctx, bson.D{{Key: "campaign_id", Value: c.ID}})
	require.NoError(t, err)
	var imported []store.Contact
	require.NoError(t, cur.All(ctx, &imported))
	require.Len(t, imported, 2)
	for _, ct := range imported {
		for _, tmpl := range []string{c.Agent.InstructionsTemplate, c.Agent.Greeting, "Please call {{callback}}."} {
			_, err := agent.Render(tmpl, ct.Variables)
			require.NoError(t, err, ct.Phone)
		}
	}
}
