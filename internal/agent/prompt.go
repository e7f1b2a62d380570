// Package agent is the conversation policy: the prompt built from a
// campaign's template and the contact's variables (one length rule for
// them everywhere: CheckVariable), the tools the model may call, and the
// validation of their arguments. The call's timers are internal/call's.
package agent

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxVariableLen bounds one variable's value in a prompt, in characters
// (Unicode code points): contact data is untrusted input, and a long value
// is more room for prompt injection.
const MaxVariableLen = 500

// VariableTooLongError is a variable's value over MaxVariableLen.
type VariableTooLongError struct {
	Name string
	Len  int // in characters
}

func (e *VariableTooLongError) Error() string {
	return fmt.Sprintf("template variable %s is %d characters, at most %d allowed", e.Name, e.Len, MaxVariableLen)
}

// CheckVariable is the one length rule for a template variable's value,
// used wherever a value enters: CSV import, task validation and Render.
// It counts characters, not bytes, so "é" counts once everywhere and a
// value that was accepted at the door is never refused at dial time.
func CheckVariable(name, value string) error {
	if n := utf8.RuneCountInString(value); n > MaxVariableLen {
		return &VariableTooLongError{Name: name, Len: n}
	}
	return nil
}

var placeholderRe = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)

// MissingVariablesError names every placeholder without a value.
type MissingVariablesError struct{ Names []string }

func (e *MissingVariablesError) Error() string {
	return "template variables without a value: " + strings.Join(e.Names, ", ")
}

// Render fills {{name}} placeholders. A missing variable is an error before
// dialing, never a blank in the prompt; values are trimmed, stripped of
// control characters and limited by CheckVariable.
func Render(tmpl string, vars map[string]string) (string, error) {
	var missing []string
	seen := map[string]bool{}
	for _, m := range placeholderRe.FindAllStringSubmatch(tmpl, -1) {
		name := m[1]
		if v, ok := vars[name]; (!ok || strings.TrimSpace(v) == "") && !seen[name] {
			missing = append(missing, name)
		}
		seen[name] = true
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return "", &MissingVariablesError{Names: missing}
	}
	names := make([]string, 0, len(seen))
	for name := range seen {
		names = append(names, name)
	}
	sort.Strings(names) // the same error for the same input
	for _, name := range names {
		if err := CheckVariable(name, vars[name]); err != nil {
			return "", err
		}
	}
	return placeholderRe.ReplaceAllStringFunc(tmpl, func(p string) string {
		return clean(vars[placeholderRe.FindStringSubmatch(p)[1]])
	}), nil
}

// clean keeps a value on one line: a newline in a contact's name must not
// start a new instruction in the prompt.
func clean(v string) string {
	v = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, v)
	return strings.Join(strings.Fields(v), " ")
}
