package realtime

import "errors"

// SendToolOutput answers a FunctionCall without asking the model to go on.
// A caller uses it when it starts the next response itself, with its own
// instructions, or answers several calls of one response before a single
// CreateResponse (a second response.create while one is active is refused
// by the API), or is about to end the call.
func (s *Session) SendToolOutput(callID, output string) error {
	if callID == "" {
		return errors.New("realtime: SendToolOutput: callID is empty")
	}
	return s.sendControl(itemCreateEvent{Type: "conversation.item.create", EventID: s.nextID(),
		Item: createItem{Type: "function_call_output", CallID: callID, Output: output}})
}
