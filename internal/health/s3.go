package health

import (
	"context"
	"fmt"

	"github.com/docshield/voice-worker/internal/bucket"
)

// S3Probe is the `health` check for S3: put, get and delete a small
// encrypted object.
func S3Probe(ctx context.Context, c *bucket.Client) (string, error) {
	r, err := c.Probe(ctx)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("bucket %s: put %s, get %s, delete %s", r.Bucket,
		r.Put.Round(10_000), r.Get.Round(10_000), r.Delete.Round(10_000)), nil
}

// VerifyS3 probes the bucket and reports the settings the operations doc
// requires of it (versioning, default encryption, an expiring lifecycle
// rule, public access blocked).
func VerifyS3(ctx context.Context, c *bucket.Client) []Finding {
	f := &Findings{Target: "s3"}
	detail, err := S3Probe(ctx, c)
	if err != nil {
		f.Fail("probe", "%v: check S3_BUCKET, AWS_REGION, the IAM policy and the bucket policy", err)
	} else {
		f.OK("probe", "%s (SSE AES256 confirmed)", detail)
	}
	r, err := c.InspectBucket(ctx)
	if err != nil {
		f.Fail("bucket", "%v", err)
		return f.List
	}
	for _, s := range []struct {
		item string
		set  bucket.Setting
	}{
		{"versioning", r.Versioning},
		{"default encryption", r.Encryption},
		{"lifecycle", r.Lifecycle},
		{"public access block", r.PublicAccessBlock},
	} {
		if s.set.Status == bucket.StatusOn {
			f.OK(s.item, "%s", s.set)
		} else {
			f.Warn(s.item, "%s", s.set)
		}
	}
	if r.Lifecycle.Status == bucket.StatusOn && !r.LifecycleExpiringRule {
		f.Warn("lifecycle expiry", "no enabled rule expires objects: recordings would be kept forever")
	}
	return f.List
}
