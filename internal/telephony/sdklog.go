package telephony

import (
	"github.com/go-logr/logr"
	protoLogger "github.com/livekit/protocol/logger"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"go.uber.org/zap"
)

// sdkLogger routes the LiveKit SDK's (and pion's) logs into ours. The SDK's
// default writes every ICE state change to stderr; here its info becomes our
// debug and its errors our warnings, since the SDK recovers from most of
// them and we report what matters ourselves.
func sdkLogger(log *zap.Logger) protoLogger.Logger {
	return protoLogger.LogRLogger(logr.New(zapSink{log: log.Named("livekit")}))
}

type zapSink struct{ log *zap.Logger }

func (s zapSink) Init(logr.RuntimeInfo) {}

func (s zapSink) Enabled(level int) bool {
	return level == 0 && s.log.Core().Enabled(zap.DebugLevel)
}

func (s zapSink) Info(_ int, msg string, kv ...any) { s.log.Debug(msg, fields(kv)...) }

func (s zapSink) Error(err error, msg string, kv ...any) {
	s.log.Warn(msg, append(fields(kv), zap.Error(err))...)
}

func (s zapSink) WithValues(kv ...any) logr.LogSink { return zapSink{log: s.log.With(fields(kv)...)} }

func (s zapSink) WithName(name string) logr.LogSink { return zapSink{log: s.log.Named(name)} }

func fields(kv []any) []zap.Field {
	out := make([]zap.Field, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		key, ok := kv[i].(string)
		if !ok {
			key = "key"
		}
		out = append(out, zap.Any(key, kv[i+1]))
	}
	return out
}

// SetSDKLogger sends the logs the LiveKit SDK writes outside any room (pion's
// WebRTC stack among them) to log instead of stderr. The SDK keeps this in a
// package variable: call it once at startup, before any call is placed.
func SetSDKLogger(log *zap.Logger) {
	lksdk.SetLogger(sdkLogger(log))
}
