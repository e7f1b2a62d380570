package logging_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestMaskPhone(t *testing.T) {
	require.Equal(t, "+*******4567", logging.MaskPhone("+15551234567"))
	require.Equal(t, "(***) ***-4567", logging.MaskPhone("(555) 123-4567"))
	require.Equal(t, "***", logging.MaskPhone("911"))
}

func TestRedactString(t *testing.T) {
	cases := map[string]string{
		"dial redis://:pa55word@host:6379/0 failed":       "pa55word",
		"mongodb+srv://user:m0ngo@cluster0.example.net/x": "m0ngo",
		`{"api_key":"sk-abc123"}`:                         "sk-abc123",
		"Authorization: Bearer tok_123456":                "tok_123456",
		"password=hunter2&x=1":                            "hunter2",
		"calling +15551234567 now":                        "555123",
	}
	for in, secret := range cases {
		out := logging.RedactString(in)
		require.NotContains(t, out, secret, "input %q", in)
	}
	require.Contains(t, logging.RedactString("calling +15551234567 now"), "4567")
	require.Equal(t, "redis://:xxxxx@host:6379/0", logging.RedactURL("redis://:pa55word@host:6379/0"))
}

func TestLoggerRedactsEveryOutput(t *testing.T) {
	var buf bytes.Buffer
	obsCore, observed := observer.New(zapcore.DebugLevel)
	l, err := logging.New(logging.Options{Level: "info", Out: zapcore.AddSync(&buf), Sinks: []zapcore.Core{obsCore}})
	require.NoError(t, err)

	l = l.With(zap.String("uri", "mongodb://u:topsecret1@h/"))
	l.Info("dialing +15551234567", zap.Error(errors.New("auth failed: password=topsecret2")), zap.String("to", "+442071234567"))
	l.Debug("below level")

	out := buf.String()
	for _, secret := range []string{"topsecret1", "topsecret2", "5551234", "2071234"} {
		require.NotContains(t, out, secret)
	}
	require.Contains(t, out, "4567")
	require.NotContains(t, out, "below level")

	// The sink saw the same entry, redacted, and nothing below the level.
	require.Equal(t, 1, observed.Len())
	e := observed.All()[0]
	require.NotContains(t, e.Message, "5551234")
	for _, f := range e.Context {
		require.NotContains(t, f.String, "topsecret")
	}
}

func TestContextLogger(t *testing.T) {
	require.NotNil(t, logging.FromContext(context.Background()))
	core, observed := observer.New(zapcore.InfoLevel)
	ctx := logging.WithContext(context.Background(), zap.New(core).With(zap.String("task_id", "t1")))
	logging.FromContext(ctx).Info("x")
	require.Equal(t, "t1", observed.All()[0].ContextMap()["task_id"])
}

func TestRedactLeavesAddressesAndDurationsAlone(t *testing.T) {
	for _, s := range []string{"redis://127.0.0.1:45243/0", "took 1234ms", "id 65f1c0ffee0000000000abcd", "10.0.0.12:6379"} {
		require.Equal(t, s, logging.RedactString(s))
	}
	require.NotContains(t, logging.RedactString("call 15551234567 failed"), "555123")
	require.NotContains(t, logging.RedactString("to +1 (555) 123-4567"), "123-45")
}
