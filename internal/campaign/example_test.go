package campaign_test

import (
	"fmt"
	"time"

	"github.com/docshield/voice-worker/internal/campaign"
)

// Nobody is called outside 08:00–21:00 where their phone rings. A number
// whose zones (libphonenumber's) span several must be inside the hours in
// every one of them (a US toll-free number may ring from Guam to Pago
// Pago); the window says why it is closed and when it opens.
func ExampleLegalWindow() {
	at := time.Date(2026, 12, 4, 15, 29, 0, 0, time.UTC) // 00:29 in Tokyo, 10:29 in New York
	for _, number := range []string{"+81355550199", "+12125550100", "+18005550100"} {
		w, err := campaign.LegalWindow(number, "")
		if err != nil {
			fmt.Println(number, err)
			continue
		}
		if why := w.Closed(at); why != "" {
			next, _ := w.NextOpen(at)
			fmt.Printf("%s: closed (%s); opens %s\n", number, why, next.UTC().Format(time.RFC3339))
			continue
		}
		fmt.Printf("%s: open\n", number)
	}
	// Output:
	// +81355550199: closed (it is Sat 00:29 JST in Asia/Tokyo); opens 2026-12-04T23:00:00Z
	// +12125550100: open
	// +18005550100: closed (it is Fri 05:29 HST in America/Adak, it is Fri 06:29 AKST in America/Anchorage, it is Fri 06:29 AKST in America/Juneau, it is Fri 07:29 PST in America/Los_Angeles, it is Fri 07:29 PST in America/Vancouver, it is Sat 01:29 ChST in Pacific/Guam, it is Fri 05:29 HST in Pacific/Honolulu, it is Fri 04:29 SST in Pacific/Pago_Pago, it is Sat 01:29 ChST in Pacific/Saipan); opens 2026-12-04T22:00:00Z
}

// A campaign's own hours are cut to the legal limits: they can narrow the
// window, never widen it.
func ExampleParseHours() {
	_, err := campaign.ParseHours("06:00", "07:30", nil)
	fmt.Println(err)
	h, err := campaign.ParseHours("07:00", "22:00", []string{"mon", "tue"})
	if err != nil {
		panic(err)
	}
	ny, _ := time.LoadLocation("America/New_York")
	fmt.Println(h.Open(time.Date(2026, 12, 1, 12, 45, 0, 0, time.UTC), ny)) // Tue 07:45 in New York
	fmt.Println(h.Open(time.Date(2026, 12, 1, 13, 0, 0, 0, time.UTC), ny))  // Tue 08:00
	// Output:
	// schedule.calling_hours_start/end: 06:00–07:30 lies outside the 08:00–21:00 calling limits
	// false
	// true
}
