// Package bucket keeps call recordings in S3 (MinIO locally and in tests).
//
// Every object it writes is encrypted at rest with SSE-S3 (AES256), whatever
// the bucket's default says, and objects are shared only through presigned
// GET URLs that live at most MaxPresignTTL. Probe and InspectBucket back the
// operator commands (`worker health`, `worker verify s3`).
package bucket

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

const (
	// MaxPresignTTL is the longest life a presigned URL may have: recordings
	// hold patient-office conversations and are shared only short-term.
	MaxPresignTTL = 15 * time.Minute

	// MinPartSize is S3's smallest allowed multipart part (except the last).
	MinPartSize = manager.MinUploadPartSize

	// DefaultPartSize keeps a streaming upload's memory small (at most about
	// three parts are held at once) while staying far from S3's 10,000-part
	// limit: 8 MiB parts allow objects up to ~78 GiB, days of audio.
	DefaultPartSize = 8 << 20

	// SSE is the server-side encryption every write asks for.
	SSE = types.ServerSideEncryptionAes256
)

// ErrNotFound reports that an object does not exist.
var ErrNotFound = errors.New("bucket: object not found")

// ErrPresignTTL reports a presign lifetime outside (0, MaxPresignTTL].
var ErrPresignTTL = errors.New("bucket: presign ttl out of range")

// Options configure a Client. The zero values of the optional fields pick
// production defaults (AWS endpoints, default credential chain).
type Options struct {
	Region string
	// AccessKeyID and SecretAccessKey are used when both are set; when both
	// are empty the SDK's default chain (env, shared config, IAM role) is used.
	AccessKeyID     string
	SecretAccessKey string
	Bucket          string
	// Endpoint empty means AWS. When set (MinIO), requests go there with
	// path-style addressing, since such servers rarely have wildcard DNS.
	Endpoint     string
	UsePathStyle bool
	// PartSize is the multipart part size for Upload; 0 means DefaultPartSize.
	PartSize int64
	// HTTPClient replaces the default client (which has connect and
	// response-header timeouts but no overall timeout, so long uploads are
	// bounded by the caller's context instead).
	HTTPClient aws.HTTPClient
}

// String hides the secret so Options can be printed or logged safely.
func (o Options) String() string {
	secret := ""
	if o.SecretAccessKey != "" {
		secret = "[REDACTED]"
	}
	return fmt.Sprintf("bucket.Options{Region:%q AccessKeyID:%q SecretAccessKey:%q Bucket:%q Endpoint:%q UsePathStyle:%t PartSize:%d}",
		o.Region, o.AccessKeyID, secret, o.Bucket, o.Endpoint, o.UsePathStyle, o.PartSize)
}

// GoString keeps %#v from printing the secret too.
func (o Options) GoString() string { return o.String() }

func (o Options) validate() error {
	switch {
	case o.Region == "":
		return errors.New("bucket: Options.Region is empty")
	case o.Bucket == "":
		return errors.New("bucket: Options.Bucket is empty")
	case (o.AccessKeyID == "") != (o.SecretAccessKey == ""):
		return errors.New("bucket: Options.AccessKeyID and Options.SecretAccessKey must be set together (or both empty for the default credential chain)")
	case o.PartSize != 0 && o.PartSize < MinPartSize:
		return fmt.Errorf("bucket: Options.PartSize %d is below S3's minimum part size %d", o.PartSize, int64(MinPartSize))
	}
	return nil
}

// api is the part of *s3.Client this package uses. It is the seam tests use
// to inject faults; *s3.Client satisfies it, and it includes
// manager.UploadAPIClient so the uploader goes through the same seam.
type api interface {
	manager.UploadAPIClient
	HeadObject(context.Context, *s3.HeadObjectInput, ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	HeadBucket(context.Context, *s3.HeadBucketInput, ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	GetBucketVersioning(context.Context, *s3.GetBucketVersioningInput, ...func(*s3.Options)) (*s3.GetBucketVersioningOutput, error)
	GetBucketEncryption(context.Context, *s3.GetBucketEncryptionInput, ...func(*s3.Options)) (*s3.GetBucketEncryptionOutput, error)
	GetBucketLifecycleConfiguration(context.Context, *s3.GetBucketLifecycleConfigurationInput, ...func(*s3.Options)) (*s3.GetBucketLifecycleConfigurationOutput, error)
	GetPublicAccessBlock(context.Context, *s3.GetPublicAccessBlockInput, ...func(*s3.Options)) (*s3.GetPublicAccessBlockOutput, error)
}

// Client reads and writes one bucket. It is safe for concurrent use.
type Client struct {
	bucket   string
	api      api
	presign  *s3.PresignClient
	partSize int64
}

// New builds a Client. It does not contact S3; use Probe for that.
func New(ctx context.Context, o Options) (*Client, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	httpClient := o.HTTPClient
	if httpClient == nil {
		httpClient = defaultHTTPClient()
	}
	loadOpts := []func(*config.LoadOptions) error{
		config.WithRegion(o.Region),
		config.WithHTTPClient(httpClient),
	}
	if o.AccessKeyID != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.SecretAccessKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		// The SDK's message names the broken setting (profile, env var); it
		// does not include secret values.
		return nil, fmt.Errorf("bucket: load AWS config for bucket %q: %w", o.Bucket, err)
	}
	raw := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
			so.UsePathStyle = true
		}
		if o.UsePathStyle {
			so.UsePathStyle = true
		}
	})
	partSize := o.PartSize
	if partSize == 0 {
		partSize = DefaultPartSize
	}
	return &Client{
		bucket:   o.Bucket,
		api:      raw,
		presign:  s3.NewPresignClient(raw),
		partSize: partSize,
	}, nil
}

// defaultHTTPClient fails fast on an unreachable endpoint or a server that
// accepts a request and never answers, without capping the duration of a
// long streaming upload (the caller's context does that).
func defaultHTTPClient() aws.HTTPClient {
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 5 * time.Second }).
		WithTransportOptions(func(t *http.Transport) {
			t.ResponseHeaderTimeout = 30 * time.Second
		})
}

// Bucket is the bucket this client writes to, for recording it next to keys.
func (c *Client) Bucket() string { return c.bucket }

func checkKey(key string) error {
	if key == "" {
		return errors.New("bucket: key is empty")
	}
	return nil
}

// Put stores a small object whose bytes are already at hand, encrypted with
// SSE-S3. The body must be seekable: over plain HTTP (MinIO) the SDK has to
// hash the payload before sending, and retries have to rewind it. Streams
// of unknown length go through Upload.
//
// S3 returns metadata keys lower-cased; use lower-case keys to round-trip.
func (c *Client) Put(ctx context.Context, key string, body io.ReadSeeker, contentType string, metadata map[string]string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if body == nil {
		return fmt.Errorf("bucket: put %q: body is nil", key)
	}
	_, err := c.api.PutObject(ctx, &s3.PutObjectInput{
		Bucket:               aws.String(c.bucket),
		Key:                  aws.String(key),
		Body:                 body,
		ContentType:          optString(contentType),
		Metadata:             metadata,
		ServerSideEncryption: SSE,
	})
	if err != nil {
		return fmt.Errorf("bucket: put %q in bucket %q: %w", key, c.bucket, err)
	}
	return nil
}

// UploadResult describes an object written by Upload. It carries no
// encryption field: MinIO omits it from CompleteMultipartUpload responses,
// so Head is the place to check it.
type UploadResult struct {
	Key string
	// Bytes and SHA256 (hex) are of what was read from the body, so callers
	// can record them without a second pass.
	Bytes     int64
	SHA256    string
	ETag      string
	VersionID string
}

// Upload streams body to key until body returns io.EOF, using a multipart
// upload once the stream exceeds one part. Parts are sent one at a time
// (Concurrency 1: the uploader then holds the part in flight, one queued and
// one being filled), so memory stays near 3 × PartSize whatever the
// stream's length.
//
// To finish a stream early and keep what was written, make body return
// io.EOF (close the pipe's writer). Cancelling ctx instead abandons the
// object: the multipart upload is aborted and nothing is stored. A Read
// blocked on body does not watch ctx, so close the stream as well.
func (c *Client) Upload(ctx context.Context, key string, body io.Reader, contentType string, metadata map[string]string) (UploadResult, error) {
	if err := checkKey(key); err != nil {
		return UploadResult{}, err
	}
	if body == nil {
		return UploadResult{}, fmt.Errorf("bucket: upload %q: body is nil", key)
	}
	// The counting reader also hides any io.Seeker, so the uploader always
	// takes its bounded streaming path. manager.Uploader is deprecated in
	// favour of feature/s3/transfermanager, which is still v0.x; the
	// uploader is maintained and does what we need until that settles.
	counted := &countingReader{r: body, h: sha256.New()}
	//lint:ignore SA1019 transfermanager is v0.x; see the comment above
	uploader := manager.NewUploader(c.api, func(u *manager.Uploader) {
		u.PartSize = c.partSize
		u.Concurrency = 1
	})
	//lint:ignore SA1019 see NewUploader above
	out, err := uploader.Upload(ctx, &s3.PutObjectInput{
		Bucket:               aws.String(c.bucket),
		Key:                  aws.String(key),
		Body:                 counted,
		ContentType:          optString(contentType),
		Metadata:             metadata,
		ServerSideEncryption: SSE,
	})
	if err != nil {
		c.abortAfterCancel(ctx, key, err)
		return UploadResult{}, fmt.Errorf("bucket: upload %q to bucket %q after %d bytes: %w", key, c.bucket, counted.n, err)
	}
	return UploadResult{
		Key:       key,
		Bytes:     counted.n,
		SHA256:    hex.EncodeToString(counted.h.Sum(nil)),
		ETag:      aws.ToString(out.ETag),
		VersionID: aws.ToString(out.VersionID),
	}, nil
}

// abortAfterCancel retries the abort the uploader attempted with the
// caller's context: once that context is cancelled the uploader's abort
// fails at once, and the orphaned parts would be billed until a lifecycle
// rule removes them.
func (c *Client) abortAfterCancel(ctx context.Context, key string, err error) {
	var failure manager.MultiUploadFailure
	if ctx.Err() == nil || !errors.As(err, &failure) || failure.UploadID() == "" {
		return
	}
	abortCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	// Best effort: the upload error is what the caller needs to see.
	_, _ = c.api.AbortMultipartUpload(abortCtx, &s3.AbortMultipartUploadInput{
		Bucket:   aws.String(c.bucket),
		Key:      aws.String(key),
		UploadId: aws.String(failure.UploadID()),
	})
}

// countingReader is read only by the uploader's calling goroutine.
type countingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.h.Write(p[:n])
	return n, err
}

// ObjectInfo is what Head reports about an object.
type ObjectInfo struct {
	Key          string
	Size         int64
	ContentType  string
	SSE          string
	Metadata     map[string]string
	ETag         string
	VersionID    string
	LastModified time.Time
}

// Head reads an object's metadata. A missing object gives ErrNotFound.
func (c *Client) Head(ctx context.Context, key string) (ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return ObjectInfo{}, err
	}
	out, err := c.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key)})
	if err != nil {
		if isNotFound(err) {
			err = fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return ObjectInfo{}, fmt.Errorf("bucket: head %q in bucket %q: %w", key, c.bucket, err)
	}
	return ObjectInfo{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		ContentType:  aws.ToString(out.ContentType),
		SSE:          string(out.ServerSideEncryption),
		Metadata:     out.Metadata,
		ETag:         aws.ToString(out.ETag),
		VersionID:    aws.ToString(out.VersionId),
		LastModified: aws.ToTime(out.LastModified),
	}, nil
}

// Delete removes an object. In a versioned bucket this adds a delete marker
// and the data stays recoverable until the lifecycle rule expires it.
// Deleting a missing key succeeds, as in S3.
func (c *Client) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := c.api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("bucket: delete %q in bucket %q: %w", key, c.bucket, err)
	}
	return nil
}

// PresignGet returns a URL that lets anyone holding it download key until
// ttl passes. The URL is a credential: do not log it.
func (c *Client) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	if ttl <= 0 || ttl > MaxPresignTTL {
		return "", fmt.Errorf("%w: ttl %v for %q must be above 0 and at most %v (recordings are shared only by short-lived URLs)",
			ErrPresignTTL, ttl, key, MaxPresignTTL)
	}
	req, err := c.presign.PresignGetObject(ctx,
		&s3.GetObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key)},
		s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("bucket: presign get %q in bucket %q: %w", key, c.bucket, err)
	}
	return req.URL, nil
}

func isNotFound(err error) bool {
	return hasCode(err, "NotFound") || hasCode(err, "NoSuchKey")
}

// reason shortens an SDK error to its service code and message, which is
// what an operator needs in a report line.
func reason(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if msg := apiErr.ErrorMessage(); msg != "" {
			return apiErr.ErrorCode() + ": " + msg
		}
		return apiErr.ErrorCode()
	}
	return err.Error()
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}
