package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/bucket"
	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/stretchr/testify/require"
)

// runRecording runs `worker recording ...` in-process with only the Mongo
// and S3 settings, which is all it may need.
func runRecording(t *testing.T, vars map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := cmdRecording(t.Context(), env{stdout: &out, stderr: &errb, lookup: config.MapLookup(vars)}, args)
	return result{code, out.String(), errb.String()}
}

func TestRecordingURLPresignsTheCallsRecording(t *testing.T) {
	t.Parallel()
	s3 := testenv.S3(t)
	vars := map[string]string{
		"MONGODB_URI":           testenv.MongoURI(t),
		"MONGODB_DATABASE":      testenv.UniqueName(t),
		"AWS_REGION":            s3.Region,
		"AWS_ACCESS_KEY_ID":     s3.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY": s3.SecretAccessKey,
		"S3_BUCKET":             s3.Bucket,
		"S3_ENDPOINT":           s3.Endpoint,
	}
	ctx := t.Context()
	st, err := store.Open(ctx, store.Options{URI: vars["MONGODB_URI"], Database: vars["MONGODB_DATABASE"]})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close(context.Background()) })
	objects, err := bucket.New(ctx, bucket.Options{Region: s3.Region, AccessKeyID: s3.AccessKeyID,
		SecretAccessKey: s3.SecretAccessKey, Bucket: s3.Bucket, Endpoint: s3.Endpoint})
	require.NoError(t, err)

	// An attempt that ended with a recording, and one that has none.
	key := "recordings/test/" + vars["MONGODB_DATABASE"] + "/rec1.ogg"
	body := []byte("OggS not really audio")
	require.NoError(t, objects.Put(ctx, key, bytes.NewReader(body), "audio/ogg", nil))
	t.Cleanup(func() { objects.Delete(context.Background(), key) })
	for _, id := range []string{"rec1", "norec"} {
		require.NoError(t, st.CreateAttempt(ctx, &store.Call{ID: id, Phone: "+14155550100"}))
		claim, err := st.ClaimAttempt(ctx, id, "test", time.Minute)
		require.NoError(t, err)
		var f store.CallFields
		if id == "rec1" {
			f.Recording = &store.Recording{Bucket: s3.Bucket, Key: key, Bytes: int64(len(body)), DurationMS: 1000, Format: "ogg/opus"}
		}
		require.NoError(t, st.Transition(ctx, claim, store.CallCompleted, f))
	}

	r := runRecording(t, vars, "url", "rec1")
	require.Equal(t, 0, r.code, r.stderr)
	u, err := url.Parse(strings.TrimSpace(r.stdout))
	require.NoError(t, err)
	require.Equal(t, "900", u.Query().Get("X-Amz-Expires"), "the default is the 15 minute maximum")
	require.Contains(t, r.stderr, key)
	resp, err := http.Get(u.String())
	require.NoError(t, err)
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, body, got)

	// Flags may come after the arguments.
	r = runRecording(t, vars, "url", "rec1", "--ttl", "2m")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "X-Amz-Expires=120")

	r = runRecording(t, vars, "url", "rec1", "--ttl", "16m")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "at most 15m0s")
	require.Empty(t, r.stdout)

	r = runRecording(t, vars, "url", "norec")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, `attempt "norec" (status completed) has no recording`)

	r = runRecording(t, vars, "url", "missing")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, `no call attempt "missing"`)

	other := map[string]string{}
	for k, v := range vars {
		other[k] = v
	}
	other["S3_BUCKET"] = "another-bucket"
	r = runRecording(t, other, "url", "rec1")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, `is in bucket "`+s3.Bucket+`", but S3_BUCKET is "another-bucket"`)
}

func TestRecordingURLUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{}, {"url"}, {"get", "x"}, {"url", "a", "b"}} {
		r := runRecording(t, nil, args...)
		require.Equal(t, 2, r.code, "args %q", args)
		require.Contains(t, r.stderr, "Usage: worker recording url <attempt-id>")
	}
	r := runRecording(t, nil, "url", "x")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "MONGODB_URI", "a missing setting is named")
}
