package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docshield/voice-worker/internal/bucket"
	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/store"
)

// cmdRecording prints a presigned GET URL for a call's recording, the only
// way recordings leave the bucket. The URL is a credential: it goes to
// stdout for the operator and nowhere else.
func cmdRecording(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "recording", "recording url <attempt-id> [--ttl 15m] [--timeout 30s]")
	ttl := fs.Duration("ttl", bucket.MaxPresignTTL, fmt.Sprintf("how long the URL works, at most %v", bucket.MaxPresignTTL))
	timeout := fs.Duration("timeout", 30*time.Second, "time limit for the lookup")
	if code, done := parse(e, fs, args); done {
		return code
	}
	if fs.NArg() != 2 || fs.Arg(0) != "url" {
		fs.Usage()
		return 2
	}
	if *ttl <= 0 || *ttl > bucket.MaxPresignTTL {
		fmt.Fprintf(e.stderr, "worker recording url: --ttl %v must be above 0 and at most %v (recordings are shared only by short-lived URLs)\n", *ttl, bucket.MaxPresignTTL)
		return 2
	}
	attempt := fs.Arg(1)
	mc, err := config.LoadMongo(e.lookup)
	if err != nil {
		return configError(e, err)
	}
	sc, err := config.LoadS3(e.lookup)
	if err != nil {
		return configError(e, err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	fail := func(format string, args ...any) int {
		fmt.Fprintf(e.stderr, "worker recording url: "+format+"\n", args...)
		return 1
	}

	st, err := openStore(ctx, mc)
	if err != nil {
		return fail("%v", err)
	}
	defer st.Close(context.WithoutCancel(ctx))
	call, err := st.GetCall(ctx, attempt)
	if errors.Is(err, store.ErrNotFound) {
		return fail("no call attempt %q", attempt)
	}
	if err != nil {
		return fail("%v", err)
	}
	rec := call.Recording
	if rec == nil || rec.Key == "" {
		return fail("%s", noRecording(call))
	}
	if rec.Bucket != "" && rec.Bucket != sc.Bucket {
		return fail("the recording of attempt %q is in bucket %q, but S3_BUCKET is %q", attempt, rec.Bucket, sc.Bucket)
	}
	client, err := openStorage(ctx, sc)
	if err != nil {
		return fail("%v", err)
	}
	url, err := client.PresignGet(ctx, rec.Key, *ttl)
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintln(e.stdout, url)
	fmt.Fprintf(e.stderr, "%s (%s, %d bytes, %s) valid for %v, until %s\n", rec.Key, rec.Format, rec.Bytes,
		(time.Duration(rec.DurationMS) * time.Millisecond).String(), *ttl, time.Now().Add(*ttl).UTC().Format(time.RFC3339))
	if call.RecordingStatus == store.RecordingPartial {
		fmt.Fprintf(e.stderr, "partial recording: %s\n", lostText(call))
	}
	return 0
}

// noRecording says why a call has no final object yet, and when it will.
func noRecording(c *store.Call) string {
	switch {
	case c.RecordingStatus == store.RecordingPendingUpload && c.RecordingPending != nil:
		return fmt.Sprintf("the recording of attempt %q is pending upload: worker %s holds it (note valid until %s) and stores it once storage takes it; %s",
			c.ID, c.RecordingPending.Owner, c.RecordingPending.LeaseUntil.UTC().Format(time.RFC3339), c.RecordingError)
	case c.RecordingPartial != nil:
		return fmt.Sprintf("the recording of attempt %q (status %s) is still %d segment(s) under %s; a running worker joins them into %s once the call has been over for CALL_LEASE",
			c.ID, c.Status, c.RecordingPartial.Segments, c.RecordingPartial.Prefix, c.RecordingPartial.FinalKey)
	case c.RecordingError != "":
		return fmt.Sprintf("attempt %q (status %s) has no recording: %s", c.ID, c.Status, c.RecordingError)
	}
	return fmt.Sprintf("attempt %q (status %s) has no recording", c.ID, c.Status)
}

func lostText(c *store.Call) string {
	if c.RecordingLostMS > 0 {
		return fmt.Sprintf("%v lost: %s", time.Duration(c.RecordingLostMS)*time.Millisecond, c.RecordingError)
	}
	return c.RecordingError
}
