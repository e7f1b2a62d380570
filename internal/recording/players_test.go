package recording

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The recording plays in the players people use, each side on its own
// channel where it was heard: libopusfile is every other test's decoder;
// here ffmpeg (its own Opus decoder) and Chromium (an <audio> element and
// the Web Audio API's decodeAudioData, as a browser plays a presigned URL)
// decode the same file. Each skips when the player is not installed.

// recordForPlayers records bargeInScript cut into segments: the file
// players get is the joined one.
func recordForPlayers(t *testing.T) []byte {
	t.Helper()
	st := newMemStorage(t)
	rec := newTestRecorder(t, st, Options{SegmentDuration: 2 * time.Second}, nil)
	bargeInScript.feed(t, rec, testStart())
	res, err := rec.Finish(context.Background())
	require.NoError(t, err)
	data, ok := st.get(res.Stored.Key)
	require.True(t, ok)
	return data
}

func requirePlayer(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (apt-get install %s)", name, name)
	}
	return path
}

func TestRecordingPlaysInFFmpeg(t *testing.T) {
	t.Parallel()
	ffmpeg := requirePlayer(t, "ffmpeg")
	data := recordForPlayers(t)
	file := filepath.Join(t.TempDir(), "call.ogg")
	require.NoError(t, os.WriteFile(file, data, 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// ffmpeg's native Opus decoder, as `ffmpeg -i call.ogg` picks it.
	out, err := exec.CommandContext(ctx, ffmpeg, "-v", "error", "-i", file, "-f", "s16le", "-acodec", "pcm_s16le", "-ar", "48000", "-").Output()
	require.NoError(t, err, "ffmpeg refuses the recording")
	var d decoded
	for i := 0; i+4 <= len(out); i += 4 {
		d.left = append(d.left, float64(int16(binary.LittleEndian.Uint16(out[i:]))))
		d.right = append(d.right, float64(int16(binary.LittleEndian.Uint16(out[i+2:]))))
	}
	require.InDelta(t, bargeInScript.Length.Seconds(), d.duration().Seconds(), 0.03)
	requireAudioMatches(t, d, bargeInScript, bargeInScript.Length, 20*time.Millisecond)

	probe, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-show_entries", "stream=codec_name,channels", "-of", "json", file).Output()
	require.NoError(t, err)
	require.JSONEq(t, `{"programs":[],"streams":[{"codec_name":"opus","channels":2}]}`, string(probe))
}

// chromiumPage decodes the recording in the page, then posts what it found
// to the server it came from: the <audio> element's duration (or its
// error) and, from decodeAudioData, each channel's level in 5 ms windows.
const chromiumPage = `<!doctype html><body><script>
const b64 = "%s";
const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
const url = URL.createObjectURL(new Blob([bytes], {type: "audio/ogg"}));
const report = r => fetch("/result", {method: "POST", body: JSON.stringify(r)});
const audio = new Audio();
const meta = new Promise(ok => {
  audio.onloadedmetadata = () => ok({duration: audio.duration});
  audio.onerror = () => ok({error: String(audio.error && audio.error.code)});
});
audio.src = url;
(async () => {
  const r = {canPlay: audio.canPlayType('audio/ogg; codecs="opus"')};
  Object.assign(r, await meta);
  try {
    const ctx = new OfflineAudioContext(2, 48000, 48000);
    const buf = await ctx.decodeAudioData(bytes.buffer.slice(0));
    r.rate = buf.sampleRate; r.channels = buf.numberOfChannels; r.length = buf.length;
    r.levels = [];
    for (let c = 0; c < buf.numberOfChannels; c++) {
      const x = buf.getChannelData(c), w = buf.sampleRate / 200, out = [];
      for (let i = 0; i + w <= x.length; i += w) {
        let e = 0;
        for (let k = i; k < i + w; k++) e += x[k] * x[k];
        out.push(Math.round(Math.sqrt(e / w) * 32768));
      }
      r.levels.push(out);
    }
  } catch (e) { r.decodeError = String(e); }
  await report(r);
})();
</script></body>`

type chromiumResult struct {
	CanPlay     string  `json:"canPlay"`
	Duration    float64 `json:"duration"`
	Error       string  `json:"error"`
	DecodeError string  `json:"decodeError"`
	Rate        float64 `json:"rate"`
	Channels    int     `json:"channels"`
	Length      int     `json:"length"`
	Levels      [][]int `json:"levels"`
}

func TestRecordingPlaysInChromium(t *testing.T) {
	t.Parallel()
	chromium := requirePlayer(t, "chromium")
	data := recordForPlayers(t)
	// Headless Chromium, given a page and no command, runs until stopped:
	// it is stopped once the page has posted its result. (--dump-dom with a
	// virtual time budget dumped before a starved machine had decoded.)
	page := fmt.Appendf(nil, chromiumPage, base64.StdEncoding.EncodeToString(data))
	results := make(chan []byte, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write(page)
	})
	mux.HandleFunc("POST /result", func(w http.ResponseWriter, r *http.Request) {
		if b, err := io.ReadAll(r.Body); err == nil {
			select {
			case results <- b:
			default:
			}
		}
	})
	srv := httptest.NewServer(mux) // 127.0.0.1
	defer srv.Close()
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--user-data-dir="+filepath.Join(t.TempDir(), "profile"), srv.URL+"/")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helpers go with it
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start(), "chromium")
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// stop ends Chromium and waits for it: only then is stderr, which
	// exec copies in a goroutine of its own, safe to read.
	stop := sync.OnceFunc(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	defer stop()
	var result []byte
	select {
	case result = <-results:
	case err := <-exited:
		exited <- err // for stop's wait
		stop()
		require.Fail(t, "Chromium exited before the page reported", "%v: %.1000s", err, stderr.String())
	case <-time.After(2 * time.Minute):
		stop()
		require.Fail(t, "the page reported nothing in 2 minutes", "%.1000s", stderr.String())
	}
	var r chromiumResult
	require.NoError(t, json.Unmarshal(result, &r))
	require.Equal(t, "probably", r.CanPlay)
	require.Empty(t, r.Error, "<audio> refuses the recording")
	require.InDelta(t, bargeInScript.Length.Seconds(), r.Duration, 0.03, "<audio> duration")
	require.Empty(t, r.DecodeError, "decodeAudioData refuses the recording")
	require.Equal(t, 2, r.Channels)
	require.Equal(t, 48000.0, r.Rate)
	require.InDelta(t, bargeInScript.Length.Seconds(), float64(r.Length)/r.Rate, 0.03)
	// The levels, back to samples of the same loudness, go through the
	// same checks as the other decoders' output.
	var d decoded
	for _, lv := range r.Levels[0] {
		for range 240 {
			d.left = append(d.left, float64(lv))
		}
	}
	for _, lv := range r.Levels[1] {
		for range 240 {
			d.right = append(d.right, float64(lv))
		}
	}
	requireAudioMatches(t, d, bargeInScript, bargeInScript.Length, 20*time.Millisecond)
}
