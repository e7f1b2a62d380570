package calleesim

import (
	"os"
	"testing"

	"github.com/docshield/voice-worker/internal/telephony"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) {
	telephony.SetSDKLogger(zap.NewNop())
	os.Exit(m.Run())
}
