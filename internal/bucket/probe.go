package bucket

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// ProbePrefix is where Probe writes its short-lived objects, so IAM policies
// and lifecycle rules can single them out.
const ProbePrefix = "health/probe/"

// ProbeStep names one step of Probe.
type ProbeStep string

const (
	StepPut    ProbeStep = "put"
	StepGet    ProbeStep = "get"
	StepDelete ProbeStep = "delete"
)

// ProbeError says which step of Probe failed, and against which bucket.
type ProbeError struct {
	Step   ProbeStep
	Bucket string
	Key    string
	Err    error
}

func (e *ProbeError) Error() string {
	return fmt.Sprintf("bucket probe: %s of %q in bucket %q failed: %v", e.Step, e.Key, e.Bucket, e.Err)
}

func (e *ProbeError) Unwrap() error { return e.Err }

// ProbeResult is a successful probe: the latency of each step.
type ProbeResult struct {
	Bucket string
	Key    string
	Put    time.Duration
	Get    time.Duration
	Delete time.Duration
}

// probeSize keeps the probe cheap while still exercising a real body.
const probeSize = 256

// Probe proves the bucket is usable end to end: it writes a small object
// under ProbePrefix with SSE-S3, reads it back and compares the bytes,
// checks the object is AES256-encrypted, and deletes it. A failure is a
// *ProbeError naming the step.
//
// The delete names the version when the bucket is versioned, so repeated
// probes leave no noncurrent versions or delete markers behind (the role
// needs s3:DeleteObjectVersion on ProbePrefix for that).
func (c *Client) Probe(ctx context.Context) (ProbeResult, error) {
	payload := make([]byte, probeSize)
	if _, err := rand.Read(payload); err != nil {
		return ProbeResult{}, fmt.Errorf("bucket probe: random payload: %w", err)
	}
	key := ProbePrefix + hex.EncodeToString(payload[:8])
	res := ProbeResult{Bucket: c.bucket, Key: key}
	fail := func(step ProbeStep, err error) (ProbeResult, error) {
		return res, &ProbeError{Step: step, Bucket: c.bucket, Key: key, Err: err}
	}

	start := time.Now()
	put, err := c.api.PutObject(ctx, &s3.PutObjectInput{
		Bucket:               aws.String(c.bucket),
		Key:                  aws.String(key),
		Body:                 bytes.NewReader(payload),
		ContentType:          aws.String("application/octet-stream"),
		ServerSideEncryption: SSE,
	})
	if err != nil {
		return fail(StepPut, err)
	}
	res.Put = time.Since(start)
	versionID := put.VersionId

	start = time.Now()
	getErr := c.probeGet(ctx, key, versionID, payload)
	res.Get = time.Since(start)

	start = time.Now()
	_, delErr := c.api.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket:    aws.String(c.bucket),
		Key:       aws.String(key),
		VersionId: versionID,
	})
	res.Delete = time.Since(start)

	if getErr != nil {
		if delErr != nil {
			getErr = errors.Join(getErr, fmt.Errorf("cleanup delete also failed: %w", delErr))
		}
		return fail(StepGet, getErr)
	}
	if delErr != nil {
		return fail(StepDelete, delErr)
	}
	return res, nil
}

func (c *Client) probeGet(ctx context.Context, key string, versionID *string, want []byte) error {
	out, err := c.api.GetObject(ctx, &s3.GetObjectInput{
		Bucket:    aws.String(c.bucket),
		Key:       aws.String(key),
		VersionId: versionID,
	})
	if err != nil {
		return err
	}
	defer out.Body.Close()
	// One byte more than expected so a longer object is caught too.
	got, err := io.ReadAll(io.LimitReader(out.Body, int64(len(want))+1))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("read back %d bytes that differ from the %d written", len(got), len(want))
	}
	if out.ServerSideEncryption != SSE {
		return fmt.Errorf("object encryption is %q, want %q", out.ServerSideEncryption, SSE)
	}
	return nil
}
