package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

const (
	s3Bucket = "docshield-recordings-dev"
	s3Region = "us-east-1"
	// Production's lifecycle: recordings expire after 90 days.
	recordingsPrefix     = "recordings/"
	recordingsExpiryDays = 90
)

// minioService runs MinIO with a static KMS key, so SSE-S3 (AES256) works
// as on AWS, and sets the bucket up like production's (versioning, default
// encryption, lifecycle), which is what `worker verify s3` checks.
//
// The bucket is set up with aws-sdk-go-v2, the SDK the worker itself uses:
// no second S3 client in the dependency tree, and the setup exercises the
// same API calls `verify s3` reads back.
type minioService struct {
	bin            string
	port, console  int
	user, password string
	p              *proc
}

func (m *minioService) name() string              { return "minio" }
func (m *minioService) server() builtServer       { return minioServer }
func (m *minioService) setBinary(path string)     { m.bin = path }
func (m *minioService) logPath(dir string) string { return filepath.Join(dir, "minio.log") }
func (m *minioService) url() string               { return fmt.Sprintf("http://127.0.0.1:%d", m.port) }
func (m *minioService) stop()                     { m.p.stop(stopGrace) }

func (m *minioService) endpoint() string {
	return m.url() + "  bucket " + s3Bucket + " (versioned, AES256, recordings/ expire in 90d)"
}

func (m *minioService) env() []envVar {
	return []envVar{
		{"AWS_REGION", s3Region},
		{"AWS_ACCESS_KEY_ID", m.user},
		{"AWS_SECRET_ACCESS_KEY", m.password},
		{"S3_BUCKET", s3Bucket},
		{"S3_ENDPOINT", m.url()},
		// Credentials come from the env; never let an SDK probe the EC2
		// metadata address, which is off loopback.
		{"AWS_EC2_METADATA_DISABLED", "true"},
		// Tests that stop storage mid-call start private instances with it.
		{"DEVSTACK_MINIO_SERVER", m.bin},
	}
}

func (m *minioService) start(ctx context.Context, dir string) error {
	data := filepath.Join(dir, "minio")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return fmt.Errorf("minio data dir: %w", err)
	}
	m.user = "devstack-" + randomHex(6)
	m.password = randomHex(20)
	kmsKey := make([]byte, 32)
	if _, err := rand.Read(kmsKey); err != nil {
		return fmt.Errorf("kms key: %w", err)
	}
	env := []envVar{
		{"MINIO_ROOT_USER", m.user},
		{"MINIO_ROOT_PASSWORD", m.password},
		{"MINIO_KMS_SECRET_KEY", "devstack-key:" + base64.StdEncoding.EncodeToString(kmsKey)},
		{"MINIO_BROWSER", "off"},
		{"MINIO_UPDATE", "off"},
	}
	return retryOnClash(ctx, func() error {
		ports, err := freePorts(2)
		if err != nil {
			return err
		}
		m.port, m.console = ports[0], ports[1]
		m.p, err = startProc("minio", m.logPath(dir), env, m.bin, "server",
			"--address", fmt.Sprintf("127.0.0.1:%d", m.port),
			"--console-address", fmt.Sprintf("127.0.0.1:%d", m.console),
			data)
		if err != nil {
			return err
		}
		err = m.p.waitReady(ctx, readyTimeout, m.ready)
		if err == nil {
			err = m.setupBucket(ctx)
		}
		if err != nil {
			m.p.stop(stopGrace)
		}
		return err
	})
}

func (m *minioService) ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url()+"/minio/health/ready", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s", resp.Status)
	}
	// On a busy machine health/ready can answer before the object layer
	// is up, and S3 calls still get 503 XMinioServerNotInitialized.
	if _, err := m.client().ListBuckets(ctx, &s3.ListBucketsInput{}); err != nil {
		return fmt.Errorf("list buckets: %w", err)
	}
	return nil
}

func (m *minioService) client() *s3.Client {
	return s3.New(s3.Options{
		Region:       s3Region,
		BaseEndpoint: aws.String(m.url()),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(m.user, m.password, ""),
	})
}

func (m *minioService) setupBucket(ctx context.Context) error {
	c := m.client()
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s3Bucket)})
	var owned *s3types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("create bucket %s: %w", s3Bucket, err)
	}
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
		Bucket:                  aws.String(s3Bucket),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled},
	}); err != nil {
		return fmt.Errorf("bucket %s versioning: %w", s3Bucket, err)
	}
	if _, err := c.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{
		Bucket: aws.String(s3Bucket),
		ServerSideEncryptionConfiguration: &s3types.ServerSideEncryptionConfiguration{
			Rules: []s3types.ServerSideEncryptionRule{{
				ApplyServerSideEncryptionByDefault: &s3types.ServerSideEncryptionByDefault{
					SSEAlgorithm: s3types.ServerSideEncryptionAes256,
				},
			}},
		},
	}); err != nil {
		return fmt.Errorf("bucket %s encryption: %w", s3Bucket, err)
	}
	if _, err := c.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{
		Bucket: aws.String(s3Bucket),
		LifecycleConfiguration: &s3types.BucketLifecycleConfiguration{
			Rules: []s3types.LifecycleRule{{
				ID:         aws.String("expire-recordings"),
				Status:     s3types.ExpirationStatusEnabled,
				Filter:     &s3types.LifecycleRuleFilter{Prefix: aws.String(recordingsPrefix)},
				Expiration: &s3types.LifecycleExpiration{Days: aws.Int32(recordingsExpiryDays)},
			}},
		},
	}); err != nil {
		return fmt.Errorf("bucket %s lifecycle: %w", s3Bucket, err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // cannot fail on Linux
	}
	return hex.EncodeToString(b)
}
