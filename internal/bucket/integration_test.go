package bucket

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/stretchr/testify/require"
)

// These tests run against the devstack's MinIO (SSE-S3 enabled). Each one
// writes under its own key prefix, or into its own bucket, and removes
// what it wrote, including old versions in the versioned stack bucket.

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func clientFor(t *testing.T, env testenv.S3Env, bucket string, partSize int64) *Client {
	t.Helper()
	c, err := New(context.Background(), Options{
		Region:          env.Region,
		AccessKeyID:     env.AccessKeyID,
		SecretAccessKey: env.SecretAccessKey,
		Bucket:          bucket,
		Endpoint:        env.Endpoint,
		PartSize:        partSize,
	})
	require.NoError(t, err)
	return c
}

// stackClient returns a client for the stack's bucket and a key prefix that
// is removed, with every version, when the test ends.
func stackClient(t *testing.T, partSize int64) (*Client, testenv.S3Env, string) {
	t.Helper()
	env := testenv.S3(t)
	c := clientFor(t, env, env.Bucket, partSize)
	prefix := testenv.UniqueName(t) + "/"
	t.Cleanup(func() { removeVersions(t, c, prefix) })
	return c, env, prefix
}

// raw is the real SDK client behind c, for the setup and checks this
// package has no methods for.
func raw(c *Client) *s3.Client {
	a := c.api
	if f, ok := a.(*faultyAPI); ok {
		a = f.api
	}
	return a.(*s3.Client)
}

// removeVersions deletes every version and delete marker under prefix, so a
// versioned bucket really forgets the test's objects. It returns how many
// it removed.
func removeVersions(t *testing.T, c *Client, prefix string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	removed := 0
	// Bounded: a test writes a handful of objects, 1000 per page.
	for page := 0; page < 10; page++ {
		out, err := raw(c).ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(c.bucket), Prefix: aws.String(prefix)})
		require.NoError(t, err)
		type ref struct{ key, version *string }
		var refs []ref
		for _, v := range out.Versions {
			refs = append(refs, ref{v.Key, v.VersionId})
		}
		for _, m := range out.DeleteMarkers {
			refs = append(refs, ref{m.Key, m.VersionId})
		}
		if len(refs) == 0 {
			return removed
		}
		for _, r := range refs {
			_, err := raw(c).DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(c.bucket), Key: r.key, VersionId: r.version})
			require.NoError(t, err)
			removed++
		}
	}
	t.Fatalf("versions under %q kept coming back after 10 pages", prefix)
	return removed
}

// bucketSetup says how newBucket configures a bucket.
type bucketSetup struct {
	versioning, encryption bool
	partSize               int64
	// lifecycle is the rule to install, if any.
	lifecycle *types.LifecycleRule
}

// expiringRule is the rule the operations doc asks for: recordings expire.
func expiringRule() *types.LifecycleRule {
	return &types.LifecycleRule{
		ID:         aws.String("expire-recordings"),
		Status:     types.ExpirationStatusEnabled,
		Filter:     &types.LifecycleRuleFilter{Prefix: aws.String("recordings/")},
		Expiration: &types.LifecycleExpiration{Days: aws.Int32(90)},
	}
}

// newBucket creates a bucket of the test's own, set up as asked, and
// removes it when the test ends.
func newBucket(t *testing.T, setup bucketSetup) *Client {
	t.Helper()
	env := testenv.S3(t)
	name := strings.ReplaceAll(testenv.UniqueName(t), "_", "-")
	c := clientFor(t, env, name, setup.partSize)
	ctx := testCtx(t)
	b := aws.String(name)
	_, err := raw(c).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b})
	require.NoError(t, err)
	t.Cleanup(func() {
		removeVersions(t, c, "")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := raw(c).DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: b})
		require.NoError(t, err)
	})
	if setup.versioning {
		_, err = raw(c).PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: b,
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})
		require.NoError(t, err)
	}
	if setup.encryption {
		_, err = raw(c).PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: b,
			ServerSideEncryptionConfiguration: &types.ServerSideEncryptionConfiguration{Rules: []types.ServerSideEncryptionRule{{
				ApplyServerSideEncryptionByDefault: &types.ServerSideEncryptionByDefault{SSEAlgorithm: types.ServerSideEncryptionAes256},
			}}}})
		require.NoError(t, err)
	}
	if setup.lifecycle != nil {
		_, err = raw(c).PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{Bucket: b,
			LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: []types.LifecycleRule{*setup.lifecycle}}})
		require.NoError(t, err)
	}
	return c
}

// plainBucket is versioned but has no default encryption, so an object
// that comes out AES256-encrypted proves the write itself asked for it.
func plainBucket(t *testing.T, partSize int64) *Client {
	t.Helper()
	return newBucket(t, bucketSetup{versioning: true, partSize: partSize})
}

func TestPutHeadRoundTrip(t *testing.T) {
	c := plainBucket(t, 0)
	prefix := "recordings/"
	ctx := testCtx(t)
	key := prefix + "note.json"
	body := []byte(`{"hello":"world"}`)
	meta := map[string]string{"attempt-id": "att-1", "campaign": "camp-9"}

	require.NoError(t, c.Put(ctx, key, bytes.NewReader(body), "application/json", meta))

	info, err := c.Head(ctx, key)
	require.NoError(t, err)
	require.Equal(t, int64(len(body)), info.Size)
	require.Equal(t, "AES256", info.SSE)
	require.Equal(t, "application/json", info.ContentType)
	require.Equal(t, meta, info.Metadata)
	require.NotEmpty(t, info.VersionID, "the stack bucket is versioned")

	_, err = c.Head(ctx, prefix+"missing")
	require.ErrorIs(t, err, ErrNotFound)

	require.NoError(t, c.Delete(ctx, key))
	_, err = c.Head(ctx, key)
	require.ErrorIs(t, err, ErrNotFound)
}

// produce writes size deterministic pseudo-random bytes to w in uneven
// chunks, then closes it, and sends the sha256 of what it wrote.
func produce(w *io.PipeWriter, size int, seed byte) <-chan string {
	done := make(chan string, 1)
	go func() {
		rng := rand.NewChaCha8([32]byte{seed})
		h := sha256.New()
		buf := make([]byte, 100_003) // not a divisor of the part size
		left := size
		for left > 0 {
			n := min(left, len(buf))
			_, _ = rng.Read(buf[:n])
			h.Write(buf[:n])
			if _, err := w.Write(buf[:n]); err != nil {
				done <- "write failed: " + err.Error()
				return
			}
			left -= n
		}
		_ = w.Close()
		done <- hex.EncodeToString(h.Sum(nil))
	}()
	return done
}

// uploadStream streams size bytes through an io.Pipe into key and checks
// the result against what the producer wrote.
func uploadStream(t *testing.T, c *Client, key string, size int) UploadResult {
	t.Helper()
	ctx := testCtx(t)
	pr, pw := io.Pipe()
	produced := produce(pw, size, 7)
	res, err := c.Upload(ctx, key, pr, "audio/wav", map[string]string{"attempt-id": "att-2"})
	// Unblocks the producer if the upload stopped reading early.
	_ = pr.CloseWithError(errors.New("upload returned"))
	want := <-produced
	require.NoError(t, err)
	require.Len(t, want, 64, want)

	require.Equal(t, key, res.Key)
	require.Equal(t, int64(size), res.Bytes)
	require.Equal(t, want, res.SHA256)

	info, err := c.Head(ctx, key)
	require.NoError(t, err)
	require.Equal(t, int64(size), info.Size)
	require.Equal(t, "AES256", info.SSE)
	require.Equal(t, "audio/wav", info.ContentType)
	require.Equal(t, map[string]string{"attempt-id": "att-2"}, info.Metadata)

	out, err := raw(c).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key)})
	require.NoError(t, err)
	defer out.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, out.Body)
	require.NoError(t, err)
	require.Equal(t, int64(size), n)
	require.Equal(t, want, hex.EncodeToString(h.Sum(nil)), "stored bytes differ from the stream")
	return res
}

func TestUploadStreamsMultipart(t *testing.T) {
	c := plainBucket(t, MinPartSize)
	res := uploadStream(t, c, "recordings/call.wav", 12<<20)
	// A multipart ETag ends in -<parts>: 5 MiB + 5 MiB + 2 MiB.
	require.True(t, strings.HasSuffix(strings.Trim(res.ETag, `"`), "-3"), "ETag %s is not a 3-part upload", res.ETag)
}

func TestUploadShortStreamSinglePut(t *testing.T) {
	c := plainBucket(t, MinPartSize)
	res := uploadStream(t, c, "recordings/short.wav", 300_000)
	require.NotContains(t, res.ETag, "-", "a stream shorter than a part is one PutObject")
}

func TestUploadCancelledLeavesNoParts(t *testing.T) {
	c := plainBucket(t, MinPartSize)
	key := "recordings/cancelled.wav"
	ctx, cancel := context.WithCancel(testCtx(t))
	pr, pw := io.Pipe()
	// Feed more than one part so a multipart upload starts, then cancel
	// while the uploader waits for more data.
	fed := make(chan error, 1)
	go func() {
		_, err := pw.Write(make([]byte, MinPartSize+1))
		fed <- err
	}()
	uploaded := make(chan error, 1)
	go func() {
		_, err := c.Upload(ctx, key, pr, "audio/wav", nil)
		uploaded <- err
	}()
	require.NoError(t, <-fed)
	// The first part is being sent or sent; the uploader now blocks reading.
	// Cancelling here must abort rather than leave orphaned parts.
	requireEventually(t, func() bool { return len(listUploads(t, c, key)) == 1 }, "multipart upload never started")
	cancel()
	_ = pw.CloseWithError(context.Canceled) // the pipe read does not watch ctx
	err := <-uploaded
	require.Error(t, err)
	require.Contains(t, err.Error(), key)

	requireEventually(t, func() bool { return len(listUploads(t, c, key)) == 0 }, "multipart upload was not aborted")
	_, err = c.Head(testCtx(t), key)
	require.ErrorIs(t, err, ErrNotFound)
}

func listUploads(t *testing.T, c *Client, key string) []types.MultipartUpload {
	t.Helper()
	out, err := raw(c).ListMultipartUploads(testCtx(t), &s3.ListMultipartUploadsInput{Bucket: aws.String(c.bucket), Prefix: aws.String(key)})
	require.NoError(t, err)
	return out.Uploads
}

// requireEventually polls cond every 50ms for at most 20s.
func requireEventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		<-time.After(50 * time.Millisecond)
	}
}

func TestPresignGetIsTheOnlyWayIn(t *testing.T) {
	c, env, prefix := stackClient(t, 0)
	ctx := testCtx(t)
	key := prefix + "rec.wav"
	body := []byte("RIFF....WAVEfmt recording bytes")
	require.NoError(t, c.Put(ctx, key, bytes.NewReader(body), "audio/wav", nil))

	httpc := &http.Client{Timeout: 30 * time.Second}
	get := func(url string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		require.NoError(t, err)
		resp, err := httpc.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, b
	}

	url, err := c.PresignGet(ctx, key, 2*time.Minute)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(url, env.Endpoint+"/"), "presigned URL %q must point at the configured endpoint", url)
	status, got := get(url)
	require.Equal(t, http.StatusOK, status, string(got))
	require.Equal(t, body, got)

	status, got = get(strings.TrimSuffix(env.Endpoint, "/") + "/" + c.bucket + "/" + key)
	require.Equal(t, http.StatusForbidden, status, "unsigned GET must be refused; got body %s", got)
	require.NotEqual(t, body, got)

	_, err = c.PresignGet(ctx, key, 16*time.Minute)
	require.ErrorIs(t, err, ErrPresignTTL)
}

func TestProbeLeavesNothingBehind(t *testing.T) {
	c, _, _ := stackClient(t, 0)
	ctx := testCtx(t)
	res, err := c.Probe(ctx)
	require.NoError(t, err)
	require.Equal(t, c.bucket, res.Bucket)
	require.True(t, strings.HasPrefix(res.Key, ProbePrefix), res.Key)
	require.Positive(t, res.Put)
	require.Positive(t, res.Get)
	require.Positive(t, res.Delete)

	// The version itself was deleted: no object, version or delete marker.
	out, err := raw(c).ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(c.bucket), Prefix: aws.String(res.Key)})
	require.NoError(t, err)
	require.Empty(t, out.Versions)
	require.Empty(t, out.DeleteMarkers)
}

func TestProbeRequestsEncryptionItself(t *testing.T) {
	c := plainBucket(t, 0)
	res, err := c.Probe(testCtx(t))
	require.NoError(t, err, "the probe's put must ask for AES256 even without a bucket default")
	require.Equal(t, c.bucket, res.Bucket)
}

func TestProbeMissingBucketNamesStepAndBucket(t *testing.T) {
	env := testenv.S3(t)
	bucket := strings.ReplaceAll(testenv.UniqueName(t), "_", "-") + "-missing"
	c := clientFor(t, env, bucket, 0)

	_, err := c.Probe(testCtx(t))
	var pe *ProbeError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, StepPut, pe.Step)
	require.Equal(t, bucket, pe.Bucket)
	require.Contains(t, err.Error(), "put of")
	require.Contains(t, err.Error(), `bucket "`+bucket+`"`)
	require.Contains(t, err.Error(), "NoSuchBucket")
	require.NotContains(t, err.Error(), env.SecretAccessKey)
}

// faultyAPI passes calls to the real server except the ones a test breaks.
type faultyAPI struct {
	api
	deleteErr  error
	corruptGet bool
}

func (f *faultyAPI) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, o ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	if f.deleteErr != nil {
		return nil, f.deleteErr
	}
	return f.api.DeleteObject(ctx, in, o...)
}

func (f *faultyAPI) GetObject(ctx context.Context, in *s3.GetObjectInput, o ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	out, err := f.api.GetObject(ctx, in, o...)
	if err == nil && f.corruptGet {
		b, rerr := io.ReadAll(out.Body)
		_ = out.Body.Close()
		if rerr != nil {
			return nil, rerr
		}
		b[0] ^= 0xff
		out.Body = io.NopCloser(bytes.NewReader(b))
	}
	return out, err
}

func TestProbeNamesTheFailingStep(t *testing.T) {
	t.Run("delete", func(t *testing.T) {
		c, _, _ := stackClient(t, 0)
		c.api = &faultyAPI{api: c.api, deleteErr: errors.New("injected delete failure")}
		_, err := c.Probe(testCtx(t))
		var pe *ProbeError
		require.ErrorAs(t, err, &pe)
		require.Equal(t, StepDelete, pe.Step)
		require.ErrorContains(t, err, "injected delete failure")
		require.Contains(t, err.Error(), c.bucket)
		// The broken delete left exactly the probe's one version behind.
		require.Equal(t, 1, removeVersions(t, c, pe.Key))
	})
	t.Run("get", func(t *testing.T) {
		c, _, _ := stackClient(t, 0)
		c.api = &faultyAPI{api: c.api, corruptGet: true}
		_, err := c.Probe(testCtx(t))
		var pe *ProbeError
		require.ErrorAs(t, err, &pe)
		require.Equal(t, StepGet, pe.Step)
		require.ErrorContains(t, err, "differ")
		// The probe still removed its object after the failed check.
		_, err = c.Head(testCtx(t), pe.Key)
		require.ErrorIs(t, err, ErrNotFound)
	})
}

func TestInspectStackBucket(t *testing.T) {
	c, _, _ := stackClient(t, 0)
	r, err := c.InspectBucket(testCtx(t))
	require.NoError(t, err)
	t.Logf("versioning %s; encryption %s; lifecycle %s; public access block %s",
		r.Versioning, r.Encryption, r.Lifecycle, r.PublicAccessBlock)
	requireWellConfigured(t, r)
}

func TestInspectConfiguredBucket(t *testing.T) {
	c := newBucket(t, bucketSetup{versioning: true, encryption: true, lifecycle: expiringRule()})
	r, err := c.InspectBucket(testCtx(t))
	require.NoError(t, err)
	require.Equal(t, c.bucket, r.Bucket)
	requireWellConfigured(t, r)
	require.Equal(t, 1, r.LifecycleRules)
}

func requireWellConfigured(t *testing.T, r BucketReport) {
	t.Helper()
	require.Equal(t, StatusOn, r.Versioning.Status, r.Versioning.String())
	require.Equal(t, StatusOn, r.Encryption.Status, r.Encryption.String())
	require.Equal(t, "AES256", r.EncryptionAlgorithm)
	require.Equal(t, StatusOn, r.Lifecycle.Status, r.Lifecycle.String())
	require.Positive(t, r.LifecycleRules)
	require.True(t, r.LifecycleExpiringRule)
	require.Empty(t, r.Problems())
}

func TestInspectBareBucketListsProblems(t *testing.T) {
	c := newBucket(t, bucketSetup{})
	r, err := c.InspectBucket(testCtx(t))
	require.NoError(t, err)
	require.Equal(t, StatusOff, r.Versioning.Status, r.Versioning.String())
	require.Equal(t, StatusOff, r.Encryption.Status, r.Encryption.String())
	require.Equal(t, StatusOff, r.Lifecycle.Status, r.Lifecycle.String())
	require.Zero(t, r.LifecycleRules)
	require.Equal(t, []string{
		"versioning is required but is off (never enabled)",
		"default encryption is required but is off (no default encryption configured)",
		"a lifecycle rule is required but is off (no lifecycle rules)",
	}, r.Problems())
}

func TestInspectLifecycleWithoutExpiration(t *testing.T) {
	// Cleans up old versions only: current recordings would be kept forever.
	c := newBucket(t, bucketSetup{versioning: true, encryption: true, lifecycle: &types.LifecycleRule{
		ID:                          aws.String("noncurrent-only"),
		Status:                      types.ExpirationStatusEnabled,
		Filter:                      &types.LifecycleRuleFilter{Prefix: aws.String("recordings/")},
		NoncurrentVersionExpiration: &types.NoncurrentVersionExpiration{NoncurrentDays: aws.Int32(30)},
	}})
	r, err := c.InspectBucket(testCtx(t))
	require.NoError(t, err)
	require.Equal(t, StatusOn, r.Lifecycle.Status)
	require.False(t, r.LifecycleExpiringRule)
	require.Equal(t, []string{
		"a lifecycle rule that expires objects is required but no enabled rule has an expiration",
	}, r.Problems())
}

func TestInspectMissingBucketFails(t *testing.T) {
	env := testenv.S3(t)
	bucket := strings.ReplaceAll(testenv.UniqueName(t), "_", "-") + "-missing"
	_, err := clientFor(t, env, bucket, 0).InspectBucket(testCtx(t))
	require.ErrorContains(t, err, `bucket "`+bucket+`"`)
}

func TestEmptyKeysUseDefaultCredentialChain(t *testing.T) {
	env := testenv.S3(t)
	// The env provider is first in the SDK's chain; keep files and other
	// providers from answering instead.
	t.Setenv("AWS_ACCESS_KEY_ID", env.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", env.SecretAccessKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	c, err := New(context.Background(), Options{Region: env.Region, Bucket: env.Bucket, Endpoint: env.Endpoint})
	require.NoError(t, err)
	_, err = c.Probe(testCtx(t))
	require.NoError(t, err)

	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-"+env.SecretAccessKey)
	c, err = New(context.Background(), Options{Region: env.Region, Bucket: env.Bucket, Endpoint: env.Endpoint})
	require.NoError(t, err)
	_, err = c.Probe(testCtx(t))
	var pe *ProbeError
	require.ErrorAs(t, err, &pe, "wrong keys from the environment must be the ones used")
	require.Equal(t, StepPut, pe.Step)
	require.NotContains(t, err.Error(), env.SecretAccessKey)
}
