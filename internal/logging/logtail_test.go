package logging_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func lineIndex(m map[string]any) int {
	f, ok := m["i"].(float64)
	if !ok {
		return -1
	}
	return int(f)
}

func TestLogTailShipsNDJSONBatchesWithHeaders(t *testing.T) {
	sink := startFakeSink(t)
	lt, _ := newTestLogTail(t, sink, func(o *logging.LogTailOptions) {
		o.BatchLines = 10
		o.FlushInterval = time.Hour // only the count and Flush may send
	})
	log := zap.New(lt.Core(), zap.AddCaller()).With(zap.String("service", "worker"))
	before := time.Now()
	for i := range 25 {
		log.Info("task.done", zap.Int("i", i), zap.Duration("took", 1500*time.Millisecond))
	}

	// Two full batches go without a timer or a Flush; the last 5 wait.
	eventually(t, func() bool { return sink.Count() == 20 }, "two batches of 10 by count")
	require.Len(t, sink.Requests(), 2)
	flush(t, lt)
	require.Equal(t, 25, sink.Count())

	for _, r := range sink.Requests() {
		require.Equal(t, "Bearer tok-123", r.Header.Get("Authorization"))
		require.Equal(t, "application/x-ndjson", r.Header.Get("Content-Type"))
		require.Equal(t, "gzip", r.Header.Get("Content-Encoding"))
		require.LessOrEqual(t, len(r.Lines), 10)
	}
	for i, m := range sink.Accepted() {
		require.Equal(t, i, lineIndex(m), "lines arrive in order")
		require.Equal(t, "info", m["level"])
		require.Equal(t, "task.done", m["msg"])
		require.Equal(t, "worker", m["service"])
		require.EqualValues(t, 1500, m["took"])
		require.Contains(t, m["caller"], "logtail_test.go")
		require.NotContains(t, m, "ts", "LogTail's time field is dt")
		dt, err := time.Parse(time.RFC3339Nano, m["dt"].(string))
		require.NoError(t, err, "dt is RFC 3339")
		require.False(t, dt.Before(before.Add(-time.Second)), "dt is the log time, not something older")
	}
	st := lt.Stats()
	require.EqualValues(t, 25, st.Shipped)
	require.EqualValues(t, 3, st.Batches)
	require.Zero(t, st.DroppedTotal)
	require.Zero(t, st.BufferedBytes)
}

func TestLogTailBatchesByBytesAndByTime(t *testing.T) {
	sink := startFakeSink(t)
	lt, _ := newTestLogTail(t, sink, func(o *logging.LogTailOptions) {
		o.BatchBytes = 2048
		o.FlushInterval = time.Hour
	})
	log := zap.New(lt.Core())
	pad := strings.Repeat("x", 200)
	for i := range 20 {
		log.Info("bulk", zap.Int("i", i), zap.String("pad", pad))
	}
	eventually(t, func() bool { return sink.Count() > 0 }, "a batch goes once 2 KiB wait")
	flush(t, lt)
	require.Equal(t, 20, sink.Count())
	for _, r := range sink.Requests() {
		require.LessOrEqual(t, len(r.Raw), 2048, "a body never exceeds BatchBytes")
	}

	// The timer alone ships a partial batch.
	sink2 := startFakeSink(t)
	lt2, _ := newTestLogTail(t, sink2, func(o *logging.LogTailOptions) { o.FlushInterval = 10 * time.Millisecond })
	zap.New(lt2.Core()).Warn("lonely")
	eventually(t, func() bool { return sink2.Count() == 1 }, "the flush interval ships one line")
	require.Equal(t, "warn", sink2.Accepted()[0]["level"])
}

func TestLogTailLosesNothingAcrossShortOutage(t *testing.T) {
	sink := startFakeSink(t)
	sink.Stop()
	lt, stdout := newTestLogTail(t, sink, nil)
	log := zap.New(lt.Core())
	for i := range 300 {
		log.Info("during.outage", zap.Int("i", i))
	}
	eventually(t, func() bool { return lt.Stats().Retries >= 3 }, "the shipper keeps retrying")
	sink.Start(t)
	flush(t, lt)

	got := sink.Accepted()
	require.Len(t, got, 300)
	for i, m := range got {
		require.Equal(t, i, lineIndex(m), "each line once, in order")
	}
	st := lt.Stats()
	require.Zero(t, st.DroppedTotal)
	require.EqualValues(t, 300, st.Shipped)
	require.Len(t, stdout.Events(t, "logtail.retrying"), 1, "one notice per outage, not one per attempt")
	require.Len(t, stdout.Events(t, "logtail.recovered"), 1)
}

func TestLogTailRetriesTransientStatuses(t *testing.T) {
	sink := startFakeSink(t)
	sink.Reply(func(n int, _ *sinkRequest) (int, http.Header) {
		switch n {
		case 0:
			return http.StatusInternalServerError, nil
		case 1:
			return http.StatusServiceUnavailable, nil
		case 2:
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"0"}}
		}
		return http.StatusAccepted, nil
	})
	lt, _ := newTestLogTail(t, sink, func(o *logging.LogTailOptions) { o.FlushInterval = time.Hour })
	log := zap.New(lt.Core())
	for i := range 10 {
		log.Error("boom", zap.Int("i", i))
	}
	flush(t, lt)
	require.Equal(t, 10, sink.Count())
	reqs := sink.Requests()
	require.Len(t, reqs, 4)
	for _, r := range reqs {
		require.Len(t, r.Lines, 10, "the same batch is retried whole")
	}
	require.EqualValues(t, 3, lt.Stats().Retries)
}

func TestLogTailDropsOldestLowLevelLinesFirst(t *testing.T) {
	sink := startFakeSink(t)
	sink.Stop()
	lt, stdout := newTestLogTail(t, sink, func(o *logging.LogTailOptions) {
		o.BufferBytes = 64 << 10
		o.BatchBytes = 4 << 10
		o.DropReportInterval = 5 * time.Millisecond
	})
	log := zap.New(lt.Core())
	pad := strings.Repeat("p", 200)
	for i := range 10 {
		log.Error("important", zap.Int("i", i), zap.String("pad", pad))
		log.Warn("notable", zap.Int("i", i), zap.String("pad", pad))
	}
	const infos = 500
	for i := range infos {
		log.Info("chatter", zap.Int("i", i), zap.String("pad", pad))
	}
	st := lt.Stats()
	require.Positive(t, st.Dropped[zapcore.InfoLevel], "the outage outlasted the buffer")
	require.Zero(t, st.Dropped[zapcore.WarnLevel], "warnings stay while info can go")
	require.Zero(t, st.Dropped[zapcore.ErrorLevel])
	require.LessOrEqual(t, st.PeakBufferedBytes, int64(64<<10), "memory stays under the cap")

	// Every drop is reported on stdout, and the reports add up.
	eventually(t, func() bool {
		var sum float64
		for _, r := range stdout.Events(t, "logtail.dropped") {
			sum += r["dropped"].(float64)
		}
		return uint64(sum) == lt.Stats().DroppedTotal
	}, "logtail.dropped reports add up to the drops")

	sink.Start(t)
	flush(t, lt)
	byMsg := map[string][]int{}
	for _, m := range sink.Accepted() {
		byMsg[m["msg"].(string)] = append(byMsg[m["msg"].(string)], lineIndex(m))
		require.NotEqual(t, "logtail.dropped", m["msg"], "reports never enter the buffer")
	}
	require.Len(t, byMsg["important"], 10)
	require.Len(t, byMsg["notable"], 10)
	st = lt.Stats()
	require.Equal(t, infos, len(byMsg["chatter"])+int(st.Dropped[zapcore.InfoLevel]), "shipped + dropped = logged")

	// Apart from the batch that was in flight when the outage began, the
	// info lines kept are the newest: the oldest were dropped.
	first := map[int]bool{}
	for _, m := range sink.Requests() {
		if m.Status == http.StatusAccepted {
			for _, l := range m.Lines {
				if l["msg"] == "chatter" {
					first[lineIndex(l)] = true
				}
			}
			break
		}
	}
	var kept []int
	for _, i := range byMsg["chatter"] {
		if !first[i] {
			kept = append(kept, i)
		}
	}
	require.NotEmpty(t, kept)
	require.Equal(t, infos-1, kept[len(kept)-1], "the newest line survives")
	for j := 1; j < len(kept); j++ {
		require.Equal(t, kept[j-1]+1, kept[j], "kept lines are one contiguous newest run")
	}
}

func TestLogTailShipsEverythingWhenTheSinkKeepsUp(t *testing.T) {
	sink := startFakeSink(t)
	lt, stdout := newTestLogTail(t, sink, func(o *logging.LogTailOptions) {
		o.FlushInterval = 5 * time.Millisecond
		o.DropReportInterval = 5 * time.Millisecond
	})
	log := zap.New(lt.Core())
	for i := range 5000 {
		log.Debug("steady", zap.Int("i", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, lt.Close(ctx))
	require.Equal(t, 5000, sink.Count())
	require.Zero(t, lt.Stats().DroppedTotal)
	require.Empty(t, stdout.Events(t, "logtail.dropped"), "Close reports any drop; there were none")
}

func TestLogTailFlushesOnCloseAndRefusesAfter(t *testing.T) {
	sink := startFakeSink(t)
	lt, _ := newTestLogTail(t, sink, func(o *logging.LogTailOptions) { o.FlushInterval = time.Hour })
	log := zap.New(lt.Core())
	for i := range 50 {
		log.Info("before.close", zap.Int("i", i))
	}
	require.Zero(t, sink.Count(), "nothing due yet")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, lt.Close(ctx))
	require.Equal(t, 50, sink.Count())

	log.Warn("after.close")
	st := lt.Stats()
	require.EqualValues(t, 1, st.Abandoned)
	require.EqualValues(t, 1, st.Dropped[zapcore.WarnLevel])
	require.Equal(t, 50, sink.Count())
	require.NoError(t, lt.Close(ctx), "Close twice is harmless")
}

func TestLogTailCloseGivesUpAtItsDeadline(t *testing.T) {
	sink := startFakeSink(t)
	sink.Stop()
	lt, _ := newTestLogTail(t, sink, func(o *logging.LogTailOptions) { o.FlushInterval = time.Hour })
	log := zap.New(lt.Core())
	for i := range 10 {
		log.Info("stuck", zap.Int("i", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := lt.Close(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Contains(t, err.Error(), "still buffered")
	st := lt.Stats()
	require.EqualValues(t, 10, st.Abandoned)
	require.EqualValues(t, 10, st.DroppedTotal)
	require.Zero(t, st.BufferedBytes)
}

func TestLogTailSplitsOn413AndDropsALoneOversizedLine(t *testing.T) {
	sink := startFakeSink(t)
	sink.Reply(func(_ int, r *sinkRequest) (int, http.Header) {
		if len(r.Lines) > 4 {
			return http.StatusRequestEntityTooLarge, nil
		}
		for _, l := range r.Lines {
			if len(fmt.Sprint(l["pad"])) > 1000 {
				return http.StatusRequestEntityTooLarge, nil
			}
		}
		return http.StatusAccepted, nil
	})
	lt, _ := newTestLogTail(t, sink, func(o *logging.LogTailOptions) { o.FlushInterval = time.Hour })
	log := zap.New(lt.Core())
	for i := range 16 {
		if i == 7 {
			log.Warn("huge", zap.String("pad", strings.Repeat("h", 1500)))
		}
		log.Info("small", zap.Int("i", i))
	}
	flush(t, lt)
	got := sink.Accepted()
	require.Len(t, got, 16)
	for i, m := range got {
		require.Equal(t, i, lineIndex(m), "splitting keeps the order")
	}
	st := lt.Stats()
	require.EqualValues(t, 1, st.TooLarge)
	require.EqualValues(t, 1, st.Dropped[zapcore.WarnLevel])
	require.EqualValues(t, 16, st.Shipped)
}

func TestLogTailStopsOnRejectedToken(t *testing.T) {
	sink := startFakeSink(t)
	sink.Reply(always(http.StatusForbidden))
	lt, stdout := newTestLogTail(t, sink, func(o *logging.LogTailOptions) { o.FlushInterval = time.Hour })
	log := zap.New(lt.Core())
	for range 5 {
		log.Info("a")
	}
	flush(t, lt)
	require.True(t, lt.Stats().Stopped)
	for range 5 {
		log.Error("b")
	}
	flush(t, lt)

	require.Len(t, sink.Requests(), 1, "no request after a 403")
	st := lt.Stats()
	require.EqualValues(t, 10, st.Rejected)
	require.EqualValues(t, 5, st.Dropped[zapcore.InfoLevel])
	require.EqualValues(t, 5, st.Dropped[zapcore.ErrorLevel])
	notes := stdout.Events(t, "logtail.rejected")
	require.Len(t, notes, 1, "one loud line")
	require.Equal(t, "error", notes[0]["level"])
	require.EqualValues(t, 403, notes[0]["status"])
	require.Contains(t, notes[0]["meaning"], "LOGTAIL_SOURCE_TOKEN")
	require.NotContains(t, stdout.String(), "tok-123")
}

func TestLogTailDropsMalformedBatch(t *testing.T) {
	sink := startFakeSink(t)
	sink.Reply(sequence(http.StatusNotAcceptable))
	lt, stdout := newTestLogTail(t, sink, func(o *logging.LogTailOptions) {
		o.BatchLines = 5
		o.FlushInterval = time.Hour
	})
	log := zap.New(lt.Core())
	for i := range 5 {
		log.Info("first", zap.Int("i", i))
	}
	eventually(t, func() bool { return lt.Stats().Malformed == 5 }, "the 406 batch is counted")
	for i := range 5 {
		log.Info("second", zap.Int("i", i))
	}
	flush(t, lt)
	require.Equal(t, 5, sink.Count())
	require.Equal(t, "second", sink.Accepted()[0]["msg"])
	require.EqualValues(t, 5, lt.Stats().Dropped[zapcore.InfoLevel])
	require.Len(t, stdout.Events(t, "logtail.malformed"), 1)
	require.Len(t, sink.Requests(), 2, "a 406 is not retried")
}

func TestLogTailBacksOffOnQuotaAndRecovers(t *testing.T) {
	sink := startFakeSink(t)
	sink.Reply(sequence(http.StatusPaymentRequired, http.StatusPaymentRequired))
	lt, stdout := newTestLogTail(t, sink, func(o *logging.LogTailOptions) { o.FlushInterval = time.Hour })
	log := zap.New(lt.Core())
	for range 3 {
		log.Info("metered")
	}
	flush(t, lt)
	require.Equal(t, 3, sink.Count())
	require.EqualValues(t, 2, lt.Stats().Retries)
	require.Len(t, stdout.Events(t, "logtail.quota"), 1)
	require.Len(t, stdout.Events(t, "logtail.recovered"), 1)
}

func TestLoggerRedactsBeforeLogTail(t *testing.T) {
	sink := startFakeSink(t)
	lt, _ := newTestLogTail(t, sink, func(o *logging.LogTailOptions) { o.SyncTimeout = time.Minute })
	var out bytes.Buffer
	log, err := logging.New(logging.Options{Level: "info", Out: zapcore.AddSync(&out), Sinks: []zapcore.Core{lt.Core()}})
	require.NoError(t, err)
	log = log.With(zap.String("redis", "redis://:s3cretpw@10.0.0.1:6379/0"))
	log.Info("dialing +15551234567", zap.String("detail", "login password=hunter2 failed"), zap.String("to", "+442071234567"))
	log.Debug("below.level")
	require.NoError(t, log.Sync())

	require.Equal(t, 1, sink.Count(), "Sync flushed the sink; debug was filtered by the logger's level")
	var body []byte
	for _, r := range sink.Requests() {
		body = append(body, r.Raw...)
	}
	for _, secret := range []string{"hunter2", "s3cretpw", "5551234", "2071234"} {
		require.NotContains(t, string(body), secret)
		require.NotContains(t, out.String(), secret)
	}
	m := sink.Accepted()[0]
	require.Contains(t, m["msg"], "4567")
	require.Contains(t, m["to"], "4567")
	require.Contains(t, m, "dt")
}

func TestLogTailConcurrentWritersLoseNothing(t *testing.T) {
	sink := startFakeSink(t)
	sink.Reply(func(n int, _ *sinkRequest) (int, http.Header) {
		if n%3 == 1 {
			return http.StatusBadGateway, nil
		}
		return http.StatusAccepted, nil
	})
	lt, _ := newTestLogTail(t, sink, func(o *logging.LogTailOptions) {
		o.BatchLines = 50
		o.FlushInterval = 2 * time.Millisecond
	})
	log := zap.New(lt.Core())
	const writers, each = 4, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := log.With(zap.Int("w", w))
			for i := range each {
				l.Info("parallel", zap.Int("i", i))
			}
		}()
	}
	// Flushes racing with writers must be safe too.
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		require.NoError(t, lt.Flush(ctx))
		cancel()
	}
	wg.Wait()
	flush(t, lt)
	seen := map[[2]int]bool{}
	for _, m := range sink.Accepted() {
		k := [2]int{int(m["w"].(float64)), lineIndex(m)}
		require.False(t, seen[k], "line %v shipped twice", k)
		seen[k] = true
	}
	require.Len(t, seen, writers*each)
	require.Zero(t, lt.Stats().DroppedTotal)
}

func TestVerifyLogTail(t *testing.T) {
	sink := startFakeSink(t)
	status, err := logging.VerifyLogTail(context.Background(), sink.URL(), "tok-verify")
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, status)
	reqs := sink.Requests()
	require.Len(t, reqs, 1)
	require.Equal(t, "Bearer tok-verify", reqs[0].Header.Get("Authorization"))
	require.Equal(t, "application/x-ndjson", reqs[0].Header.Get("Content-Type"))
	require.Len(t, reqs[0].Lines, 1)
	require.Equal(t, "logtail.verify", reqs[0].Lines[0]["msg"])
	_, err = time.Parse(time.RFC3339Nano, reqs[0].Lines[0]["dt"].(string))
	require.NoError(t, err)

	sink.Reply(always(http.StatusForbidden))
	status, err = logging.VerifyLogTail(context.Background(), sink.URL(), "tok-verify")
	require.Equal(t, http.StatusForbidden, status)
	require.ErrorContains(t, err, "LOGTAIL_SOURCE_TOKEN")
	require.NotContains(t, err.Error(), "tok-verify")

	sink.Stop()
	status, err = logging.VerifyLogTail(context.Background(), sink.URL(), "tok-verify")
	require.Zero(t, status)
	require.Error(t, err)
}

func TestNewLogTailValidatesOptions(t *testing.T) {
	_, err := logging.NewLogTail(logging.LogTailOptions{})
	require.ErrorContains(t, err, "LOGTAIL_SOURCE_TOKEN")
	_, err = logging.NewLogTail(logging.LogTailOptions{Token: "t", URL: "ftp://x"})
	require.ErrorContains(t, err, "LOGTAIL_INGEST_URL")
	_, err = logging.NewLogTail(logging.LogTailOptions{Token: "t", BufferBytes: 1 << 20, BatchBytes: 1 << 20})
	require.ErrorContains(t, err, "BatchBytes")
	_, err = logging.NewLogTail(logging.LogTailOptions{Token: "t", MinRetryBackoff: time.Minute, MaxRetryBackoff: time.Second})
	require.ErrorContains(t, err, "MinRetryBackoff")
}
