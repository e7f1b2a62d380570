package bucket

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// Status is what InspectBucket learned about one bucket setting.
type Status string

const (
	StatusOn  Status = "on"
	StatusOff Status = "off"
	// StatusUnknown means the setting could not be read; Setting.Detail says why.
	StatusUnknown Status = "unknown"
)

// Setting is one bucket setting: its status and a short detail (the
// algorithm, the rule count, or why it could not be read).
type Setting struct {
	Status Status
	Detail string
}

func (s Setting) String() string {
	switch {
	case s.Status == StatusUnknown:
		return "could not read: " + s.Detail
	case s.Detail == "":
		return string(s.Status)
	default:
		return string(s.Status) + " (" + s.Detail + ")"
	}
}

func unknown(err error) Setting { return Setting{Status: StatusUnknown, Detail: reason(err)} }

// BucketReport is how a bucket is set up, against what the operations doc
// requires: versioning, default encryption, and an expiring lifecycle rule.
type BucketReport struct {
	Bucket     string
	Versioning Setting
	// Encryption is the bucket's default encryption; when on, Detail and
	// EncryptionAlgorithm hold the algorithm (AES256, aws:kms).
	Encryption          Setting
	EncryptionAlgorithm string
	// Lifecycle is on when at least one rule is enabled.
	Lifecycle             Setting
	LifecycleRules        int
	LifecycleExpiringRule bool
	// PublicAccessBlock is on only when all four blocks are set. MinIO does
	// not implement the API, which shows as unknown.
	PublicAccessBlock Setting
}

// Problems lists what the bucket lacks, one readable line each; empty means
// the bucket meets the operations doc. A public access block that could not
// be read is not a problem (MinIO has none), but one that is off is.
func (r BucketReport) Problems() []string {
	var p []string
	need := func(name string, s Setting) {
		switch s.Status {
		case StatusOn:
		case StatusUnknown:
			p = append(p, fmt.Sprintf("%s is required but could not be read: %s", name, s.Detail))
		default:
			p = append(p, fmt.Sprintf("%s is required but is %s", name, s))
		}
	}
	need("versioning", r.Versioning)
	need("default encryption", r.Encryption)
	need("a lifecycle rule", r.Lifecycle)
	if r.Lifecycle.Status == StatusOn && !r.LifecycleExpiringRule {
		p = append(p, "a lifecycle rule that expires objects is required but no enabled rule has an expiration")
	}
	if r.PublicAccessBlock.Status == StatusOff {
		p = append(p, fmt.Sprintf("public access block should be on but is %s", r.PublicAccessBlock))
	}
	return p
}

// InspectBucket reads the bucket's settings. It fails only when the bucket
// itself cannot be reached; a setting that cannot be read is reported as
// StatusUnknown with the reason.
func (c *Client) InspectBucket(ctx context.Context) (BucketReport, error) {
	b := aws.String(c.bucket)
	if _, err := c.api.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: b}); err != nil {
		return BucketReport{}, fmt.Errorf("bucket: inspect bucket %q: %w", c.bucket, err)
	}
	r := BucketReport{Bucket: c.bucket}

	if out, err := c.api.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: b}); err != nil {
		r.Versioning = unknown(err)
	} else {
		r.Versioning = versioningSetting(out.Status)
	}

	if out, err := c.api.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: b}); err != nil {
		if hasCode(err, "ServerSideEncryptionConfigurationNotFoundError") {
			r.Encryption = Setting{Status: StatusOff, Detail: "no default encryption configured"}
		} else {
			r.Encryption = unknown(err)
		}
	} else {
		r.Encryption, r.EncryptionAlgorithm = encryptionSetting(out.ServerSideEncryptionConfiguration)
	}

	if out, err := c.api.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: b}); err != nil {
		if hasCode(err, "NoSuchLifecycleConfiguration") {
			r.Lifecycle = Setting{Status: StatusOff, Detail: "no lifecycle rules"}
		} else {
			r.Lifecycle = unknown(err)
		}
	} else {
		r.Lifecycle, r.LifecycleRules, r.LifecycleExpiringRule = lifecycleSetting(out.Rules)
	}

	if out, err := c.api.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: b}); err != nil {
		if hasCode(err, "NoSuchPublicAccessBlockConfiguration") {
			r.PublicAccessBlock = Setting{Status: StatusOff, Detail: "not configured on the bucket"}
		} else {
			r.PublicAccessBlock = unknown(err)
		}
	} else {
		r.PublicAccessBlock = publicAccessSetting(out.PublicAccessBlockConfiguration)
	}
	return r, nil
}

func versioningSetting(s types.BucketVersioningStatus) Setting {
	switch s {
	case types.BucketVersioningStatusEnabled:
		return Setting{Status: StatusOn, Detail: "enabled"}
	case types.BucketVersioningStatusSuspended:
		return Setting{Status: StatusOff, Detail: "suspended"}
	case "":
		return Setting{Status: StatusOff, Detail: "never enabled"}
	default:
		return Setting{Status: StatusUnknown, Detail: fmt.Sprintf("unexpected versioning status %q", s)}
	}
}

func encryptionSetting(cfg *types.ServerSideEncryptionConfiguration) (Setting, string) {
	if cfg != nil {
		for _, rule := range cfg.Rules {
			if d := rule.ApplyServerSideEncryptionByDefault; d != nil && d.SSEAlgorithm != "" {
				alg := string(d.SSEAlgorithm)
				return Setting{Status: StatusOn, Detail: alg}, alg
			}
		}
	}
	return Setting{Status: StatusOff, Detail: "no default encryption rule"}, ""
}

func lifecycleSetting(rules []types.LifecycleRule) (s Setting, count int, expiring bool) {
	enabled, expiringN := 0, 0
	for _, rule := range rules {
		if rule.Status != types.ExpirationStatusEnabled {
			continue
		}
		enabled++
		if e := rule.Expiration; e != nil && (aws.ToInt32(e.Days) > 0 || e.Date != nil) {
			expiringN++
		}
	}
	detail := fmt.Sprintf("rules: %d total, %d enabled, %d expiring objects", len(rules), enabled, expiringN)
	if enabled == 0 {
		return Setting{Status: StatusOff, Detail: detail}, len(rules), false
	}
	return Setting{Status: StatusOn, Detail: detail}, len(rules), expiringN > 0
}

func publicAccessSetting(cfg *types.PublicAccessBlockConfiguration) Setting {
	if cfg == nil {
		return Setting{Status: StatusOff, Detail: "empty configuration"}
	}
	var off []string
	for _, f := range []struct {
		name string
		v    *bool
	}{
		{"BlockPublicAcls", cfg.BlockPublicAcls},
		{"IgnorePublicAcls", cfg.IgnorePublicAcls},
		{"BlockPublicPolicy", cfg.BlockPublicPolicy},
		{"RestrictPublicBuckets", cfg.RestrictPublicBuckets},
	} {
		if !aws.ToBool(f.v) {
			off = append(off, f.name)
		}
	}
	if len(off) > 0 {
		return Setting{Status: StatusOff, Detail: "not set: " + strings.Join(off, ", ")}
	}
	return Setting{Status: StatusOn, Detail: "all four blocks set"}
}

func hasCode(err error, code string) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == code
}
