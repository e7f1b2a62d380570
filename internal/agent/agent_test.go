package agent_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/agent"
	"github.com/stretchr/testify/require"
)

func TestRender(t *testing.T) {
	out, err := agent.Render("Call {{practice}} for Dr. {{ doctor }}; {{practice}} again.",
		map[string]string{"practice": "Elm\nDental  Care", "doctor": "Patel", "unused": "x"})
	require.NoError(t, err)
	require.Equal(t, "Call Elm Dental Care for Dr. Patel; Elm Dental Care again.", out)

	_, err = agent.Render("Hi {{name}}, {{b}} {{a}} {{name}}", map[string]string{"name": "  "})
	var missing *agent.MissingVariablesError
	require.True(t, errors.As(err, &missing))
	require.Equal(t, []string{"a", "b", "name"}, missing.Names)

	_, err = agent.Render("{{v}}", map[string]string{"v": strings.Repeat("x", agent.MaxVariableLen+1)})
	require.ErrorContains(t, err, "template variable v")
}

func TestToolsDefinitions(t *testing.T) {
	all, err := agent.Tools(nil)
	require.NoError(t, err)
	require.Len(t, all, len(agent.AllTools))
	for _, tl := range all {
		var schema map[string]any
		require.NoError(t, json.Unmarshal(tl.Parameters, &schema), tl.Name)
		require.Equal(t, "object", schema["type"])
		require.NotEmpty(t, tl.Description)
	}
	some, err := agent.Tools([]string{agent.ToolSetDisposition})
	require.NoError(t, err)
	var names []string
	for _, tl := range some {
		names = append(names, tl.Name)
	}
	require.Equal(t, []string{agent.ToolEndCall, agent.ToolSetDisposition, agent.ToolOptOut}, names)
	_, err = agent.Tools([]string{"launch_rockets"})
	require.ErrorContains(t, err, "launch_rockets")
}

func TestParseToolCall(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	ok := []struct{ name, args string }{
		{agent.ToolEndCall, `{"reason":"done"}`},
		{agent.ToolVoicemailDetected, ``},
		{agent.ToolVoicemailDetected, `{}`},
		{agent.ToolOptOut, `{}`},
		{agent.ToolTransferToHuman, `{"reason":"asked for a person"}`},
		{agent.ToolSetDisposition, `{"disposition":"interested","note":"wants a demo"}`},
		{agent.ToolScheduleCallback, `{"when":"2026-11-27T15:00:00-05:00"}`},
		{agent.ToolSendDTMF, `{"digits":"2"}`},
		{agent.ToolSendDTMF, `{"digits":" 0*#9 "}`},
	}
	for _, c := range ok {
		a, err := agent.ParseToolCall(c.name, c.args, now)
		require.NoError(t, err, "%s %s", c.name, c.args)
		require.Equal(t, c.name, a.Tool)
	}
	a, err := agent.ParseToolCall(agent.ToolScheduleCallback, `{"when":"2026-11-27T15:00:00-05:00"}`, now)
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 11, 27, 20, 0, 0, 0, time.UTC), a.CallbackAt)
	a, err = agent.ParseToolCall(agent.ToolSendDTMF, `{"digits":" 0*#9 "}`, now)
	require.NoError(t, err)
	require.Equal(t, "0*#9", a.Digits)

	bad := []struct{ name, args, want string }{
		{"rm_rf", `{}`, "unknown tool"},
		{agent.ToolEndCall, `{}`, "reason is required"},
		{agent.ToolEndCall, `{"reason":`, "not the expected JSON"},
		{agent.ToolEndCall, `{"reason":"x","extra":1}`, "unknown field"},
		{agent.ToolEndCall, `["x"]`, "not the expected JSON"},
		{agent.ToolVoicemailDetected, `{"reason":"x"}`, "does not take"},
		{agent.ToolSetDisposition, `{"disposition":"delighted"}`, "disposition must be one of"},
		{agent.ToolScheduleCallback, `{"when":"tomorrow at 3"}`, "RFC 3339"},
		{agent.ToolScheduleCallback, `{"when":"2026-11-25T15:00:00Z"}`, "in the future"},
		{agent.ToolScheduleCallback, `{"when":"2027-11-25T15:00:00Z"}`, "within 90 days"},
		{agent.ToolScheduleCallback, `{"when":5}`, "not the expected JSON"},
		{agent.ToolSendDTMF, `{}`, "digits is required"},
		{agent.ToolSendDTMF, `{"digits":""}`, "digits must be 1 to 20"},
		{agent.ToolSendDTMF, `{"digits":"2A"}`, "digits must be 1 to 20"},
		{agent.ToolSendDTMF, `{"digits":"1 2"}`, "digits must be 1 to 20"},
		{agent.ToolSendDTMF, `{"digits":"` + strings.Repeat("1", 21) + `"}`, "digits must be 1 to 20"},
		{agent.ToolSendDTMF, `{"digits":"1","reason":"menu"}`, "does not take"},
	}
	for _, c := range bad {
		_, err := agent.ParseToolCall(c.name, c.args, now)
		require.ErrorIs(t, err, agent.ErrBadToolCall, "%s %s", c.name, c.args)
		require.ErrorContains(t, err, c.want, "%s %s", c.name, c.args)
	}
	long, err := agent.ParseToolCall(agent.ToolEndCall, `{"reason":"`+strings.Repeat("a", 2000)+`"}`, now)
	require.NoError(t, err)
	require.Len(t, long.Reason, 500)
}

func FuzzParseToolCall(f *testing.F) {
	f.Add(agent.ToolScheduleCallback, `{"when":"2026-11-27T15:00:00-05:00"}`)
	f.Add(agent.ToolSetDisposition, `{"disposition":"other","note":"\u0000"}`)
	f.Add(agent.ToolSendDTMF, `{"digits":"12#"}`)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, name, args string) {
		a, err := agent.ParseToolCall(name, args, now)
		if err == nil && a.Tool != name {
			t.Fatalf("accepted %q as %q", name, a.Tool)
		}
		if err == nil && a.Tool == agent.ToolSendDTMF && (a.Digits == "" || strings.Trim(a.Digits, "0123456789*#") != "") {
			t.Fatalf("send_dtmf accepted keys %q", a.Digits)
		}
	})
}

// TestVariableLengthIsCharacters: 300 × "é" is 600 bytes but 300
// characters, inside the limit at render as at import and enqueue (they all
// call CheckVariable); 501 characters are refused.
func TestVariableLengthIsCharacters(t *testing.T) {
	accented := strings.Repeat("é", 300)
	require.NoError(t, agent.CheckVariable("v", accented))
	out, err := agent.Render("{{v}}", map[string]string{"v": accented})
	require.NoError(t, err)
	require.Equal(t, accented, out)

	require.NoError(t, agent.CheckVariable("v", strings.Repeat("é", agent.MaxVariableLen)))
	err = agent.CheckVariable("v", strings.Repeat("é", agent.MaxVariableLen+1))
	var long *agent.VariableTooLongError
	require.ErrorAs(t, err, &long)
	require.Equal(t, agent.MaxVariableLen+1, long.Len)
	_, err = agent.Render("{{v}}", map[string]string{"v": strings.Repeat("é", agent.MaxVariableLen+1)})
	require.ErrorAs(t, err, &long)
}
