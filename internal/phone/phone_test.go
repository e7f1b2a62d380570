package phone

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"+14155550100":       "+14155550100",
		" +1 (415) 555-0100": "+14155550100",
		"+1.415.555.0100":    "+14155550100",
		"0044 20 7183 8750":  "+442071838750",
		"+91 98765 43210":    "+919876543210",
		"+61\t2 9999 0000":   "+61299990000",
	} {
		got, err := Normalize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{
		"", "4155550100", "(415) 555-0100", "+0123456789", "+1 415 555 0100 ext 7", "++14155550100",
		"+1415555010012345", "1+4155550100", "+١٤١٥٥٥٥٠١٠٠", "tel:+14155550100", "+",
	} {
		_, err := Normalize(in)
		require.ErrorIs(t, err, ErrNotE164, "%q", in)
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"+14155550100", "0044 20 7183 8750", "+1 (415) 555-0100", "00", "+", "", "+1\u00a0415", "0+1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := Normalize(in)
		if err != nil {
			require.ErrorIs(t, err, ErrNotE164)
			return
		}
		require.True(t, Valid(got), "%q → %q", in, got)
		again, err := Normalize(got)
		require.NoError(t, err)
		require.Equal(t, got, again, "normalising is idempotent")
		// Only formatting is removed: the digits are the input's digits,
		// less the 00 that stood for +.
		var digits strings.Builder
		for _, r := range in {
			if r >= '0' && r <= '9' {
				digits.WriteRune(r)
			}
		}
		d := digits.String()
		if !strings.Contains(in, "+") {
			d = strings.TrimPrefix(d, "00")
		}
		require.Equal(t, d, got[1:], "%q → %q", in, got)
	})
}

func TestValidPhone(t *testing.T) {
	for _, p := range []string{"+14155550100", "+442071838750", "+3312345"} {
		require.True(t, Valid(p), p)
	}
	for _, p := range []string{"", "14155550100", "+0123456789", "+1 415 555 0100", "+1415555010012345", "+1-415"} {
		require.False(t, Valid(p), p)
	}
}
