package tasks_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/docshield/voice-worker/tasks"
	"github.com/stretchr/testify/require"
)

func TestCallOutboundValidation(t *testing.T) {
	cases := []struct {
		name, json string
		fields     []string // substrings the error must contain; none = valid
	}{
		{"attempt", `{"attempt_id":"65f1c0ffee0000000000abcd"}`, nil},
		{"empty", `{}`, []string{"attempt_id: is required"}},
		{"both", `{"attempt_id":"65f1c0ffee0000000000abcd","inline":{}}`, []string{"mutually exclusive"}},
		{"bad id", `{"attempt_id":"a b"}`, []string{"attempt_id: must be"}},
		{"unknown field", `{"attempt":"x"}`, []string{`unknown field "attempt"`}},
		{"trailing", `{"attempt_id":"65f1c0ffee0000000000abcd"} {}`, []string{"after the JSON object"}},
		{"not json", `call me`, []string{"does not match its contract"}},
		{"inline ok", `{"inline":{"attempt_id":"oneoff-0001","phone":"+14155550100","instructions":"Confirm the appointment.","variables":{"practice_name":"Elm Dental"}}}`, nil},
		{"inline zone", `{"inline":{"attempt_id":"oneoff-0001","phone":"+18005550100","instructions":"x","time_zone":"America/Chicago"}}`, nil},
		{"inline zone of another country", `{"inline":{"attempt_id":"oneoff-0001","phone":"+81355550199","instructions":"x","time_zone":"America/New_York"}}`,
			[]string{"inline.time_zone: \"America/New_York\" is not a time zone of the number's country (JP)"}},
		{"inline zone not a zone", `{"inline":{"attempt_id":"oneoff-0001","phone":"+81355550199","instructions":"x","time_zone":"Local"}}`,
			[]string{"inline.time_zone"}},
		{"inline unknown region", `{"inline":{"attempt_id":"oneoff-0001","phone":"+15551234567","instructions":"x"}}`,
			[]string{"inline.phone: the number's country is unknown"}},
		{"inline unknown region with zone", `{"inline":{"attempt_id":"oneoff-0001","phone":"+88212345678","instructions":"x","time_zone":"Europe/London"}}`,
			[]string{"inline.phone: the number's country is unknown"}},
		{"inline bad", `{"inline":{"attempt_id":"x","phone":"555-1234","instructions":" ","variables":{"1bad":"v"},"caller_id":"12"}}`,
			[]string{"inline.attempt_id", "inline.phone", "inline.instructions", "inline.variables: name \"1bad\"", "inline.caller_id"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p tasks.CallOutbound
			err := tasks.Unmarshal([]byte(c.json), &p)
			if c.fields == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tasks.ErrInvalidPayload)
			for _, f := range c.fields {
				require.Contains(t, err.Error(), f)
			}
		})
	}
}

func TestInvalidPhoneIsNotEchoed(t *testing.T) {
	p := tasks.CallOutbound{Inline: &tasks.InlineCall{AttemptID: "oneoff-0001", Phone: "0155512345678", Instructions: "x"}}
	err := p.Validate()
	require.Error(t, err)
	require.NotContains(t, err.Error(), "55512345678")
}

func TestInlineVariableTooLong(t *testing.T) {
	p := tasks.CallOutbound{Inline: &tasks.InlineCall{
		AttemptID: "oneoff-0001", Phone: "+14155550100", Instructions: "x",
		Variables: map[string]string{"note": strings.Repeat("a", tasks.MaxVariableLen+1)},
	}}
	require.ErrorContains(t, p.Validate(), "inline.variables.note: is 501 characters")

	// Characters, not bytes, as at import and render: 300 × "é" is 600
	// bytes and fine; 501 × "é" is not.
	p.Inline.Variables["note"] = strings.Repeat("é", 300)
	require.NoError(t, p.Validate())
	p.Inline.Variables["note"] = strings.Repeat("é", tasks.MaxVariableLen+1)
	require.ErrorContains(t, p.Validate(), "inline.variables.note: is 501 characters")
}

func TestNewPutsTaskOnItsQueue(t *testing.T) {
	task, err := tasks.New(tasks.CampaignDispatch{CampaignID: "65f1c0ffee0000000000abcd"})
	require.NoError(t, err)
	require.Equal(t, tasks.TypeCampaignDispatch, task.Type())
	require.JSONEq(t, `{"campaign_id":"65f1c0ffee0000000000abcd"}`, string(task.Payload()))

	_, err = tasks.New(tasks.CampaignDispatch{CampaignID: "nope"})
	require.ErrorContains(t, err, "campaign_id")
	require.True(t, errors.Is(err, tasks.ErrInvalidPayload))
}

func TestSystemProbeHold(t *testing.T) {
	var p tasks.SystemProbe
	require.NoError(t, tasks.Unmarshal([]byte(`{"hold":"2s"}`), &p))
	require.Equal(t, "2s", p.Hold.String())
	require.ErrorContains(t, tasks.Unmarshal([]byte(`{"hold":"1h"}`), &p), "hold")
	require.ErrorContains(t, tasks.Unmarshal([]byte(`{"hold":5}`), &p), "duration string")
}

func TestAttemptIDOf(t *testing.T) {
	require.Equal(t, "abc12345", tasks.AttemptIDOf([]byte(`{"attempt_id":"abc12345"}`)))
	require.Equal(t, "oneoff-1", tasks.AttemptIDOf([]byte(`{"inline":{"attempt_id":"oneoff-1"}}`)))
	require.Equal(t, "", tasks.AttemptIDOf([]byte(`garbage`)))
}

func TestForTypeCoversEveryType(t *testing.T) {
	for _, typ := range tasks.Types {
		p, ok := tasks.ForType(typ)
		require.True(t, ok, typ)
		require.Equal(t, typ, p.TaskType())
		_, ok = tasks.Queues[p.Queue()]
		require.True(t, ok, "queue of %s", typ)
	}
	_, ok := tasks.ForType("call:inbound")
	require.False(t, ok)
}
