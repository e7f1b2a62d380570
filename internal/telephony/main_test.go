package telephony

import (
	"os"
	"testing"

	"go.uber.org/zap"
)

func TestMain(m *testing.M) {
	SetSDKLogger(zap.NewNop())
	os.Exit(m.Run())
}
