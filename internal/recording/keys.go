package recording

import (
	"fmt"
	"regexp"
	"time"
)

const (
	// FinalPrefix holds finished recordings (kept 90 days by the bucket's
	// lifecycle rule); PartialPrefix holds the segments of calls still
	// running or killed mid-call (expired after 7 days).
	FinalPrefix   = "recordings/"
	PartialPrefix = "recordings-partial/"

	// InlineCampaign stands in for the campaign of a one-off inline call.
	InlineCampaign = "inline"

	// Format is what the call document's recording.format says.
	Format = "ogg/opus"
	// ContentType is set on every object; RFC 7845 registers Ogg Opus
	// under audio/ogg.
	ContentType = "audio/ogg"
)

// Keys locate one call's objects.
type Keys struct {
	// Final is recordings/<env>/<campaign>/<yyyy>/<mm>/<dd>/<attempt>.ogg.
	Final string
	// Partial is recordings-partial/<env>/<campaign>/<yyyy>/<mm>/<dd>/<attempt>/;
	// segment n is Partial + SegmentName(n).
	Partial string
}

// idPart keeps the ids that become key parts from adding path levels or
// characters that need escaping in URLs and IAM policies.
var idPart = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// KeysFor derives the keys from the call's identity; the date is the
// call's start in UTC, so the keys never change while the call runs. An
// empty campaign means an inline call.
func KeysFor(env, campaign, attempt string, start time.Time) (Keys, error) {
	if campaign == "" {
		campaign = InlineCampaign
	}
	for _, p := range []struct{ name, value string }{{"env", env}, {"campaign", campaign}, {"attempt", attempt}} {
		if !idPart.MatchString(p.value) {
			return Keys{}, fmt.Errorf("recording: %s %q must be 1-128 letters, digits, '.', '_' or '-' (it becomes part of an S3 key)", p.name, p.value)
		}
	}
	if start.IsZero() {
		return Keys{}, fmt.Errorf("recording: start time of attempt %q is zero", attempt)
	}
	day := start.UTC().Format("2006/01/02")
	dir := env + "/" + campaign + "/" + day + "/"
	return Keys{
		Final:   FinalPrefix + dir + attempt + ".ogg",
		Partial: PartialPrefix + dir + attempt + "/",
	}, nil
}

// SegmentName is segment n's name under Keys.Partial. Zero padding makes a
// listing sort in stream order.
func SegmentName(n int) string { return fmt.Sprintf("%06d.ogg", n) }

// Segment returns the key of segment n.
func (k Keys) Segment(n int) string { return k.Partial + SegmentName(n) }
