package tasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// maxJSONDepth bounds nesting: payloads are two or three levels deep, and
// the check must not recurse without limit on hostile input.
const maxJSONDepth = 32

// ErrNotStrictJSON marks JSON that encoding/json would accept but read
// ambiguously: a key given twice (the last silently wins, so a producer's
// `"phone"` typo-fix can call the wrong number) or data after the value.
var ErrNotStrictJSON = errors.New("not strict JSON")

// CheckStrictJSON reports a key that appears twice in one object (naming
// its path, e.g. inline.phone) and anything after the first JSON value.
// Syntax errors are left to the decoder that reads b afterwards.
func CheckStrictJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := walkJSON(dec, "", 0); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the JSON value", ErrNotStrictJSON)
	}
	return nil
}

// walkJSON consumes one value, checking every object in it.
func walkJSON(dec *json.Decoder, path string, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("%w: nested more than %d levels at %s", ErrNotStrictJSON, maxJSONDepth, orRoot(path))
	}
	tok, err := dec.Token()
	if err != nil {
		return nil // a syntax error: the strict decoder reports it with context
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch delim {
	case '{':
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			key, ok := kt.(string)
			if err != nil || !ok {
				return nil
			}
			p := joinPath(path, key)
			if seen[key] {
				return fmt.Errorf("%w: %s: key given twice", ErrNotStrictJSON, p)
			}
			seen[key] = true
			if err := walkJSON(dec, p, depth+1); err != nil {
				return err
			}
		}
	case '[':
		for i := 0; dec.More(); i++ {
			if err := walkJSON(dec, fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return err
			}
		}
	default:
		return nil
	}
	_, _ = dec.Token() // the closing delimiter
	return nil
}

func joinPath(path, key string) string {
	if path == "" {
		return truncate(key, 40)
	}
	return path + "." + truncate(key, 40)
}

func orRoot(path string) string {
	if path == "" {
		return "the top level"
	}
	return path
}
