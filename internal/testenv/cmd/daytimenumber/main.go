// Command daytimenumber prints a sample phone number where it is
// mid-afternoon now (testenv.DaytimeNumber), for `make dev`'s sample call:
// calls are only placed between 08:00 and 21:00 where the callee is, and
// the sample call must go through at any hour without bending that rule.
package main

import (
	"fmt"
	"time"

	"github.com/docshield/voice-worker/internal/testenv"
)

func main() {
	fmt.Println(testenv.SampleAt(time.Now(), testenv.Afternoon).Phone)
}
