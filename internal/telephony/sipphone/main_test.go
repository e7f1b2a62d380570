package sipphone

import (
	"os"
	"testing"

	"github.com/emiago/diago/media"
	"github.com/emiago/sipgo/sip"
)

func TestMain(m *testing.M) {
	// Parts of sipgo and diago log through package-level loggers.
	sip.SetDefaultLogger(quiet)
	media.SetDefaultLogger(quiet)
	os.Exit(m.Run())
}
