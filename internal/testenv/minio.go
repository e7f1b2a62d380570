package testenv

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// MinIO is a private MinIO server for one test, which the test may stop
// and start again (same port, data and keys) to make storage go away and
// come back. Like the stack's, it has a static KMS key, so SSE-S3 (AES256)
// works as on AWS.
type MinIO struct {
	t       testing.TB
	bin     string
	dir     string
	Port    int
	console int
	env     []string
	srv     *server
	// Bucket exists once StartMinIO returns.
	Bucket, AccessKeyID, SecretAccessKey, Region string
}

// StartMinIO starts a private MinIO with one bucket; it is killed when the
// test ends.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	bin := Get(t, "DEVSTACK_MINIO_SERVER")
	key := make([]byte, 32)
	secret := make([]byte, 20)
	_, _ = rand.Read(key)
	_, _ = rand.Read(secret)
	m := &MinIO{t: t, bin: bin, dir: t.TempDir(), Port: FreePort(t), console: FreePort(t),
		Bucket: "private-recordings", AccessKeyID: "private-" + hex.EncodeToString(secret[:4]),
		SecretAccessKey: hex.EncodeToString(secret), Region: "us-east-1"}
	m.env = append(os.Environ(),
		"MINIO_ROOT_USER="+m.AccessKeyID, "MINIO_ROOT_PASSWORD="+m.SecretAccessKey,
		"MINIO_KMS_SECRET_KEY=test-key:"+base64.StdEncoding.EncodeToString(key),
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	m.Start()
	t.Cleanup(m.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := m.client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(m.Bucket)}); err != nil {
		t.Fatalf("create bucket in private minio: %v", err)
	}
	return m
}

// Endpoint is the S3 endpoint URL.
func (m *MinIO) Endpoint() string { return "http://127.0.0.1:" + strconv.Itoa(m.Port) }

// Start (re)starts the server and waits until it is ready.
func (m *MinIO) Start() {
	m.t.Helper()
	cmd := exec.Command(m.bin, "server",
		"--address", "127.0.0.1:"+strconv.Itoa(m.Port),
		"--console-address", "127.0.0.1:"+strconv.Itoa(m.console),
		filepath.Join(m.dir, "data"))
	cmd.Env = m.env
	log, err := os.OpenFile(filepath.Join(m.dir, "minio.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		m.t.Fatalf("minio log: %v", err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	m.srv = launch(m.t, cmd, filepath.Join(m.dir, "minio.log"), 60*time.Second, 50*time.Millisecond, m.ready)
}

// Stop kills the server (storage gone, as in an outage) and waits for it.
func (m *MinIO) Stop() {
	m.srv.stop()
	m.srv = nil
}

// ready is an S3 call: MinIO answers its health check before it serves
// requests ("Server not initialized yet").
func (m *MinIO) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := m.client().ListBuckets(ctx, &s3.ListBucketsInput{})
	return err
}

func (m *MinIO) client() *s3.Client {
	return s3.New(s3.Options{
		Region:       m.Region,
		BaseEndpoint: aws.String(m.Endpoint()),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(m.AccessKeyID, m.SecretAccessKey, ""),
	})
}
