package bucket

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/stretchr/testify/require"
)

// These tests need no server: New does not connect, and presigning is local.

func validOptions() Options {
	return Options{
		Region:          "us-east-1",
		AccessKeyID:     "AKIDEXAMPLE",
		SecretAccessKey: "very-secret-value",
		Bucket:          "recordings",
		Endpoint:        "http://127.0.0.1:9",
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		{"no region", func(o *Options) { o.Region = "" }, "Options.Region"},
		{"no bucket", func(o *Options) { o.Bucket = "" }, "Options.Bucket"},
		{"key without secret", func(o *Options) { o.SecretAccessKey = "" }, "Options.SecretAccessKey"},
		{"secret without key", func(o *Options) { o.AccessKeyID = "" }, "Options.AccessKeyID"},
		{"tiny parts", func(o *Options) { o.PartSize = 1 << 20 }, "Options.PartSize"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := validOptions()
			tc.mutate(&o)
			_, err := New(context.Background(), o)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), "very-secret-value")
		})
	}
}

func TestNewDefaultsPartSizeAndKeepsBucket(t *testing.T) {
	c, err := New(context.Background(), validOptions())
	require.NoError(t, err)
	require.Equal(t, "recordings", c.Bucket())
	require.Equal(t, int64(DefaultPartSize), c.partSize)
}

func TestOptionsPrintingHidesSecret(t *testing.T) {
	o := validOptions()
	for _, s := range []string{o.String(), o.GoString()} {
		require.NotContains(t, s, "very-secret-value")
		require.Contains(t, s, "[REDACTED]")
		require.Contains(t, s, "AKIDEXAMPLE")
	}
}

func TestPresignGetTTLBounds(t *testing.T) {
	c, err := New(context.Background(), validOptions())
	require.NoError(t, err)
	ctx := context.Background()

	for _, ttl := range []time.Duration{0, -time.Second, MaxPresignTTL + time.Second, 24 * time.Hour} {
		url, err := c.PresignGet(ctx, "recordings/a.wav", ttl)
		require.ErrorIs(t, err, ErrPresignTTL, "ttl %v", ttl)
		require.ErrorContains(t, err, "at most 15m0s")
		require.Empty(t, url)
	}

	url, err := c.PresignGet(ctx, "recordings/a.wav", MaxPresignTTL)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(url, "http://127.0.0.1:9/recordings/recordings/a.wav?"), url)
	require.Contains(t, url, "X-Amz-Expires=900")
	require.NotContains(t, url, "very-secret-value")

	_, err = c.PresignGet(ctx, "", time.Minute)
	require.ErrorContains(t, err, "key is empty")
}

func TestProblems(t *testing.T) {
	good := BucketReport{
		Bucket:                "b",
		Versioning:            Setting{Status: StatusOn},
		Encryption:            Setting{Status: StatusOn, Detail: "AES256"},
		EncryptionAlgorithm:   "AES256",
		Lifecycle:             Setting{Status: StatusOn},
		LifecycleRules:        1,
		LifecycleExpiringRule: true,
		PublicAccessBlock:     Setting{Status: StatusUnknown, Detail: "NotImplemented"},
	}
	require.Empty(t, good.Problems(), "an unreadable public access block is not a problem")

	cases := []struct {
		name   string
		mutate func(*BucketReport)
		want   []string
	}{
		{"versioning suspended", func(r *BucketReport) { r.Versioning = Setting{Status: StatusOff, Detail: "suspended"} },
			[]string{"versioning is required but is off (suspended)"}},
		{"encryption unreadable", func(r *BucketReport) { r.Encryption = Setting{Status: StatusUnknown, Detail: "AccessDenied"} },
			[]string{"default encryption is required but could not be read: AccessDenied"}},
		{"no lifecycle", func(r *BucketReport) {
			r.Lifecycle = Setting{Status: StatusOff, Detail: "no lifecycle rules"}
			r.LifecycleExpiringRule = false
		}, []string{"a lifecycle rule is required but is off (no lifecycle rules)"}},
		{"lifecycle without expiration", func(r *BucketReport) { r.LifecycleExpiringRule = false },
			[]string{"a lifecycle rule that expires objects is required but no enabled rule has an expiration"}},
		{"public access open", func(r *BucketReport) {
			r.PublicAccessBlock = Setting{Status: StatusOff, Detail: "not set: BlockPublicPolicy"}
		}, []string{"public access block should be on but is off (not set: BlockPublicPolicy)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := good
			tc.mutate(&r)
			require.Equal(t, tc.want, r.Problems())
		})
	}
}

func TestSettingHelpers(t *testing.T) {
	require.Equal(t, "on (enabled)", versioningSetting(types.BucketVersioningStatusEnabled).String())
	require.Equal(t, "off (never enabled)", versioningSetting("").String())
	require.Equal(t, StatusUnknown, versioningSetting("Weird").Status)

	s, alg := encryptionSetting(&types.ServerSideEncryptionConfiguration{Rules: []types.ServerSideEncryptionRule{
		{ApplyServerSideEncryptionByDefault: &types.ServerSideEncryptionByDefault{SSEAlgorithm: types.ServerSideEncryptionAwsKms}},
	}})
	require.Equal(t, "on (aws:kms)", s.String())
	require.Equal(t, "aws:kms", alg)
	s, alg = encryptionSetting(&types.ServerSideEncryptionConfiguration{})
	require.Equal(t, StatusOff, s.Status)
	require.Empty(t, alg)

	s, n, expiring := lifecycleSetting([]types.LifecycleRule{
		{Status: types.ExpirationStatusDisabled, Expiration: &types.LifecycleExpiration{Days: aws.Int32(30)}},
		{Status: types.ExpirationStatusEnabled, AbortIncompleteMultipartUpload: &types.AbortIncompleteMultipartUpload{DaysAfterInitiation: aws.Int32(1)}},
	})
	require.Equal(t, StatusOn, s.Status)
	require.Equal(t, 2, n)
	require.False(t, expiring, "the only expiring rule is disabled")

	s, _, _ = lifecycleSetting([]types.LifecycleRule{{Status: types.ExpirationStatusDisabled}})
	require.Equal(t, StatusOff, s.Status)

	yes := aws.Bool(true)
	s = publicAccessSetting(&types.PublicAccessBlockConfiguration{
		BlockPublicAcls: yes, IgnorePublicAcls: yes, BlockPublicPolicy: aws.Bool(false), RestrictPublicBuckets: yes,
	})
	require.Equal(t, "off (not set: BlockPublicPolicy)", s.String())
	s = publicAccessSetting(&types.PublicAccessBlockConfiguration{
		BlockPublicAcls: yes, IgnorePublicAcls: yes, BlockPublicPolicy: yes, RestrictPublicBuckets: yes,
	})
	require.Equal(t, StatusOn, s.Status)
}

func TestProbeErrorUnwraps(t *testing.T) {
	cause := errors.New("boom")
	err := error(&ProbeError{Step: StepDelete, Bucket: "b", Key: "health/probe/x", Err: cause})
	require.ErrorIs(t, err, cause)
	require.Equal(t, `bucket probe: delete of "health/probe/x" in bucket "b" failed: boom`, err.Error())
}
