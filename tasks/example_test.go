package tasks_test

import (
	"fmt"

	"github.com/docshield/voice-worker/tasks"
)

// Each payload type owns its task type, its queue and its validation, and
// tasks.New builds the asynq task only from a valid payload.
func Example() {
	d := tasks.CampaignDispatch{CampaignID: "65f1c0ffee0000000000abcd"}
	t, err := tasks.New(d)
	if err != nil {
		panic(err)
	}
	fmt.Println(t.Type(), "on", d.Queue(), "with", tasks.MaxRetry(t.Type()), "retries:", string(t.Payload()))

	// Every problem is named by its JSON field, all at once.
	_, err = tasks.New(tasks.CallOutbound{Inline: &tasks.InlineCall{
		AttemptID: "x", Phone: "555-0100", Variables: map[string]string{"1st": "no"},
	}})
	fmt.Println(err)

	// Output:
	// campaign:dispatch on default with 5 retries: {"campaign_id":"65f1c0ffee0000000000abcd"}
	// call:outbound: invalid payload: inline.attempt_id: must be 8-64 characters of A-Z a-z 0-9 _ -, got "x"; inline.phone: must be an E.164 number like +14155550100; inline.instructions: is required; inline.variables: name "1st" must be a letter or _ followed by letters, digits or _
}

// A worker decodes payloads strictly: an unknown field is an error, so a
// producer's typo is caught rather than ignored.
func ExampleUnmarshal() {
	var p tasks.CallAnalyze
	fmt.Println(tasks.Unmarshal([]byte(`{"attempt_id":"65f1c0ffee0000000000abcd","atempt":1}`), &p))
	// Output:
	// invalid payload: call:analyze payload does not match its contract: json: unknown field "atempt"
}
