package recording

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/docshield/voice-worker/internal/bucket"
	"go.uber.org/zap"
)

// maxSegments bounds the probe for a dead worker's segments: a day of
// one-second segments.
const maxSegments = 24 * 60 * 60

// Orphan is an ended call whose recording no live worker holds, as its
// call document tells it.
type Orphan struct {
	AttemptID string
	// Partial says where the stored segments are; nil: none were noted.
	Partial *PartialInfo
	// DurationMS is the whole recording's length when the document knows
	// it (its owner noted it at hang-up); 0: unknown (the worker died
	// mid-call).
	DurationMS int64
	// LostMS is what a report already counted as lost (at shutdown or
	// after giving up); it stays lost.
	LostMS int64
	// Reason is the document's recording_error, kept when the loss is
	// already known.
	Reason string
}

// recoverOrphan joins an orphan's stored segments into its final object
// and settles its call. A failure is logged and left for a later sweep:
// every step can be done again.
func (s *Spool) recoverOrphan(ctx context.Context, o Orphan) {
	log := s.log.With(zap.String("attempt_id", o.AttemptID))
	res, err := s.join(ctx, o)
	if err != nil {
		log.Warn("recording.recover_failed", zap.Error(err))
		return
	}
	if err := s.cfg.Ledger.Settle(ctx, o.AttemptID, res); err != nil {
		log.Warn("recording.recover_failed", zap.Error(err))
		return
	}
	fields := []zap.Field{zap.String("state", string(res.State)), zap.Int64("lost_ms", res.LostMS)}
	if res.Stored != nil {
		fields = append(fields, zap.String("key", res.Stored.Key), zap.Int64("duration_ms", res.Stored.DurationMS))
	}
	log.Info("recording.recovered", fields...)
}

func (s *Spool) join(ctx context.Context, o Orphan) (Result, error) {
	if o.Partial == nil || o.Partial.Prefix == "" || o.Partial.FinalKey == "" {
		return s.outcome(o, nil), nil
	}
	st := s.cfg.Storage
	keys := Keys{Final: o.Partial.FinalKey, Partial: o.Partial.Prefix}
	var sizes []int64
	var meta map[string]string
	for n := 0; n < maxSegments; n++ {
		info, err := st.Head(ctx, keys.Segment(n))
		if errors.Is(err, bucket.ErrNotFound) {
			break
		}
		if err != nil {
			return Result{}, err
		}
		if n == 0 {
			meta = info.Metadata
		}
		sizes = append(sizes, info.Size)
	}
	if len(sizes) == 0 {
		// Joined before (by a worker that died before it could say so),
		// or expired: the final object, if any, is the recording.
		stored, err := s.adoptFinal(ctx, keys.Final)
		if errors.Is(err, bucket.ErrNotFound) {
			return s.outcome(o, nil), nil
		}
		if err != nil {
			return Result{}, err
		}
		return s.outcome(o, stored), nil
	}
	last, err := readObject(ctx, st, s.cfg.HTTPClient, keys.Segment(len(sizes)-1), sizes[len(sizes)-1])
	if err != nil {
		return Result{}, err
	}
	sealed, d, err := sealStream(last)
	if err != nil {
		return Result{}, fmt.Errorf("segment %q: %w", keys.Segment(len(sizes)-1), err)
	}
	finalMeta := map[string]string{"recording-part": "final", "recovered-by": s.cfg.Owner}
	for _, k := range []string{"attempt-id", "campaign-id", "env"} {
		finalMeta[k] = meta[k]
	}
	up, err := joinFinal(ctx, st, s.cfg.HTTPClient, keys, sizes[:len(sizes)-1], sealed, finalMeta)
	if err != nil {
		return Result{}, err
	}
	stored := &Stored{Bucket: st.Bucket(), Key: up.Key, Bytes: up.Bytes, DurationMS: d.Milliseconds(), Format: Format, SHA256: up.SHA256}
	res := s.outcome(o, stored)
	res.Stats.Segments = len(sizes)
	res.Stats.LeftoverSegments = deleteSegments(ctx, st, keys, len(sizes), s.log)
	return res, nil
}

// outcome says what the call document should say about a joined orphan.
func (s *Spool) outcome(o Orphan, stored *Stored) Result {
	res := Result{State: Partial, Stored: stored, DurationMS: o.DurationMS}
	var kept int64
	if stored != nil {
		kept = stored.DurationMS
	}
	switch {
	case o.LostMS > 0:
		res.LostMS, res.Reason = o.LostMS, o.Reason
	case o.DurationMS > 0:
		res.LostMS = max(o.DurationMS-kept, 0)
		if res.LostMS == 0 {
			res.State = Complete
		} else {
			res.Reason = fmt.Sprintf("the worker holding the recording stopped before storing its last %v",
				time.Duration(res.LostMS)*time.Millisecond)
		}
	default:
		// Killed mid-call: how long the call went on after the last
		// stored segment is not known; the segment length bounds it.
		res.Reason = fmt.Sprintf("the worker stopped mid-call; the recording holds the first %v, and what came after its last stored segment was lost",
			time.Duration(kept)*time.Millisecond)
	}
	if stored == nil {
		res.State = Partial
		if res.Reason == "" || o.LostMS == 0 {
			res.Reason = "the worker holding the recording stopped before any of it was stored"
		}
	}
	return res
}

// adoptFinal describes an existing final object: its hash and length are
// read from the object itself.
func (s *Spool) adoptFinal(ctx context.Context, key string) (*Stored, error) {
	info, err := s.cfg.Storage.Head(ctx, key)
	if err != nil {
		return nil, err
	}
	data, err := readObject(ctx, s.cfg.Storage, s.cfg.HTTPClient, key, info.Size)
	if err != nil {
		return nil, err
	}
	_, granule, err := lastPage(data)
	if err != nil {
		return nil, fmt.Errorf("final object %q: %w", key, err)
	}
	sum := sha256.Sum256(data)
	return &Stored{Bucket: s.cfg.Storage.Bucket(), Key: key, Bytes: int64(len(data)),
		DurationMS: granuleDuration(granule).Milliseconds(), Format: Format, SHA256: hex.EncodeToString(sum[:])}, nil
}

// readObject reads a whole object of the given size through a presigned
// URL.
func readObject(ctx context.Context, st Storage, hc *http.Client, key string, size int64) ([]byte, error) {
	body, err := openObject(ctx, st, hc, key)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, size+1))
	if err != nil {
		return nil, scrubURL(err, key)
	}
	if int64(len(data)) != size {
		return nil, fmt.Errorf("read segment %q: %d bytes, want %d", key, len(data), size)
	}
	return data, nil
}
