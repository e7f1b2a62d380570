package logging

import (
	"net/url"
	"regexp"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// MaskPhone keeps the last four digits of a phone number: "+15551234567"
// becomes "+*******4567". People called must not be identifiable from logs.
func MaskPhone(p string) string {
	digits := 0
	for _, r := range p {
		if r >= '0' && r <= '9' {
			digits++
		}
	}
	keep := 4
	if digits <= keep {
		keep = 0 // too short to be a real number: mask it all
	}
	var b strings.Builder
	seen := 0
	for _, r := range p {
		if r >= '0' && r <= '9' {
			seen++
			if seen > digits-keep {
				b.WriteRune(r)
			} else {
				b.WriteByte('*')
			}
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Phone is a log field holding a masked phone number.
func Phone(key, p string) zap.Field { return zap.String(key, MaskPhone(p)) }

// phoneRe matches phone numbers inside free text (error messages, echoed
// payloads): an international number starting with + (separators allowed),
// or a bare run of 10 to 15 digits. Dotted IP addresses, ports and short
// numbers are left alone so logs stay useful.
var phoneRe = regexp.MustCompile(`\+\d[\d\- ()]{5,}\d|\b\d{10,15}\b`)

// credURLRe matches the user:password@ part of a connection string.
var credURLRe = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)([^/@\s:]*):([^/@\s]*)@`)

// secretKVRe matches key=value or "key":"value" pairs whose key names a secret.
var secretKVRe = regexp.MustCompile(`(?i)((?:secret|password|passwd|token|api[_-]?key|authorization)["']?\s*[:=]\s*["']?)(?:bearer\s+)?[^\s"'&,}]+`)

// RedactString removes credentials from connection strings, masks secret
// key/value pairs and phone numbers in free text.
//
// Cheap scans decide which expressions can match at all, because most log
// strings (event names, ids, short details) contain nothing to redact and
// this runs on every field of every line.
func RedactString(s string) string {
	if strings.Contains(s, "://") && strings.Contains(s, "@") {
		s = credURLRe.ReplaceAllString(s, "${1}${2}:xxxxx@")
	}
	if mayHoldSecret(s) {
		s = secretKVRe.ReplaceAllString(s, "${1}[REDACTED]")
	}
	if digits(s) >= 7 {
		s = phoneRe.ReplaceAllStringFunc(s, MaskPhone)
	}
	return s
}

// secretWords are the key names secretKVRe looks for, in lower case.
var secretWords = []string{"secret", "passw", "token", "key", "authorization"}

func mayHoldSecret(s string) bool {
	if !strings.ContainsAny(s, ":=") {
		return false
	}
	l := strings.ToLower(s)
	for _, w := range secretWords {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}

func digits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			n++
		}
	}
	return n
}

// RedactURL returns u without its password, for logging which server a
// connection string points at.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparseable URL]"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	return u.String()
}

// Redact wraps a core so that every string field, error and message passes
// through RedactString before any output sees it: the last line of defence
// behind code that is supposed to log only masked values.
func Redact(c zapcore.Core) zapcore.Core { return redactCore{c} }

type redactCore struct{ zapcore.Core }

func (r redactCore) With(fs []zapcore.Field) zapcore.Core {
	return redactCore{r.Core.With(redactFields(fs))}
}

func (r redactCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if r.Enabled(e.Level) {
		return ce.AddCore(e, r)
	}
	return ce
}

// Write redacts once, then lets the wrapped core (a tee) pick which of its
// cores take the entry, so each output keeps its own level filter.
func (r redactCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	e.Message = RedactString(e.Message)
	e.Stack = RedactString(e.Stack)
	ce := r.Core.Check(e, nil)
	if ce == nil {
		return nil
	}
	ce.Write(redactFields(fs)...)
	return nil
}

func redactFields(fs []zapcore.Field) []zapcore.Field {
	out := make([]zapcore.Field, len(fs))
	for i, f := range fs {
		switch f.Type {
		case zapcore.StringType:
			f.String = RedactString(f.String)
		case zapcore.ErrorType:
			if err, ok := f.Interface.(error); ok && err != nil {
				f = zap.String(f.Key, RedactString(err.Error()))
			}
		case zapcore.StringerType:
			if s, ok := f.Interface.(interface{ String() string }); ok {
				f = zap.String(f.Key, RedactString(s.String()))
			}
		}
		out[i] = f
	}
	return out
}
