package recording_test

import (
	"fmt"
	"time"

	"github.com/docshield/voice-worker/internal/recording"
)

// Where a call's recording lives in the bucket. While the call runs, its
// audio is stored as 30 s segments under Partial (each one a valid piece of
// the same Ogg stream, so a dead worker loses at most the last one); at the
// end they are joined into Final, one two-channel Ogg Opus file: the callee
// on the left (stream 0), the agent on the right (stream 1). The date is
// the call's start in UTC; an inline call has no campaign and is filed
// under recording.InlineCampaign.
func ExampleKeysFor() {
	start := time.Date(2026, 12, 4, 23, 30, 0, 0, time.FixedZone("EST", -5*3600))
	k, err := recording.KeysFor("production", "spring-recall", "att-0192", start)
	if err != nil {
		panic(err)
	}
	fmt.Println(k.Final)
	fmt.Println(k.Segment(0))
	fmt.Println(k.Segment(1))

	inline, _ := recording.KeysFor("production", "", "att-0193", start)
	fmt.Println(inline.Final)

	_, err = recording.KeysFor("production", "spring/recall", "att-0194", start)
	fmt.Println(err)
	// Output:
	// recordings/production/spring-recall/2026/12/05/att-0192.ogg
	// recordings-partial/production/spring-recall/2026/12/05/att-0192/000000.ogg
	// recordings-partial/production/spring-recall/2026/12/05/att-0192/000001.ogg
	// recordings/production/inline/2026/12/05/att-0193.ogg
	// recording: campaign "spring/recall" must be 1-128 letters, digits, '.', '_' or '-' (it becomes part of an S3 key)
}
