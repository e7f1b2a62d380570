// Package phone is the one place that says what a phone number is here:
// E.164 ("+14155550100"), the only form numbers are stored, compared (the
// do-not-call list matches exactly) and dialed in; and where a number rings:
// its country and its time zones (zone.go, from libphonenumber's data),
// which calling hours are evaluated in.
package phone

import (
	"errors"
	"regexp"
	"strings"
	"unicode"
)

// ErrNotE164 is returned for a number that is not an international number.
var ErrNotE164 = errors.New("not an E.164 number like +14155550100")

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// Valid reports whether p is an E.164 number such as +14155550100.
func Valid(p string) bool { return e164.MatchString(p) }

// Normalize turns a number as people write it ("+1 (415) 555-0100",
// "0044 20 7183 8750") into E.164 ("+14155550100"). It removes spaces and
// the punctuation ( ) - . / and reads a leading 00 as +. It never guesses
// a country: a number without + or 00 is refused, because the do-not-call
// list matches numbers exactly and a wrong guess would dial someone else.
func Normalize(s string) (string, error) {
	s = strings.TrimSpace(s)
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
			b.WriteRune(r)
		case unicode.IsSpace(r) || strings.ContainsRune("()-./", r):
		default:
			return "", ErrNotE164
		}
	}
	p := b.String()
	if strings.HasPrefix(p, "00") {
		p = "+" + p[2:]
	}
	if !Valid(p) {
		return "", ErrNotE164
	}
	return p, nil
}
