package campaign

import (
	"errors"
	"strings"
	"unicode"

	"github.com/docshield/voice-worker/internal/store"
)

// ErrNotE164 is returned for a number that is not an international number.
var ErrNotE164 = errors.New("not an E.164 number like +14155550100")

// NormalizePhone turns a number as people write it ("+1 (415) 555-0100",
// "0044 20 7183 8750") into E.164 ("+14155550100"). It removes spaces and
// the punctuation ( ) - . / and reads a leading 00 as +. It never guesses
// a country: a number without + or 00 is refused, because the do-not-call
// list matches numbers exactly and a wrong guess would dial someone else.
func NormalizePhone(s string) (string, error) {
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
	if !store.ValidPhone(p) {
		return "", ErrNotE164
	}
	return p, nil
}
