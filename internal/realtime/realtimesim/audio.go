package realtimesim

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"os/exec"
	"time"
)

// SampleRate of all audio the simulator speaks and hears (GA audio/pcm).
const SampleRate = 24000

func msToSamples(ms int) int { return ms * SampleRate / 1000 }

// Silence returns ms of digital silence.
func Silence(ms int) []int16 { return make([]int16, msToSamples(ms)) }

// Tone returns ms of a sine at hz with the given peak amplitude, with 5 ms
// fades so the edges do not click. Tests use tone bursts as "callee speech".
func Tone(ms int, hz float64, amplitude int16) []int16 {
	out := make([]int16, msToSamples(ms))
	for i := range out {
		v := math.Sin(2 * math.Pi * hz * float64(i) / SampleRate)
		out[i] = int16(float64(amplitude) * v * fade(i, len(out)))
	}
	return out
}

// Concat joins pieces of audio.
func Concat(parts ...[]int16) []int16 {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]int16, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// Voice returns ms of a deterministic voice-like sound: a vibrato pitch with
// two harmonics under a 4 Hz syllable envelope. The pitch comes from the
// text, so turns sound different but every run is identical. It is loud
// enough for any energy VAD and never fully silent inside the utterance, so
// one turn reads as one stretch of speech.
func Voice(ms int, text string) []int16 {
	h := fnv.New32a()
	h.Write([]byte(text))
	f0 := 110 + float64(h.Sum32()%90)
	out := make([]int16, msToSamples(ms))
	phase := 0.0
	for i := range out {
		t := float64(i) / SampleRate
		phase += 2 * math.Pi * f0 * (1 + 0.04*math.Sin(2*math.Pi*3*t)) / SampleRate
		env := 0.35 + 0.65*0.5*(1-math.Cos(2*math.Pi*4*t))
		v := (math.Sin(phase) + 0.5*math.Sin(2*phase) + 0.25*math.Sin(3*phase)) / 1.75
		out[i] = int16(7000 * env * v * fade(i, len(out)))
	}
	return out
}

// fade is a 5 ms linear ramp at both ends.
func fade(i, n int) float64 {
	const ramp = SampleRate * 5 / 1000
	return math.Min(1, math.Min(float64(i)/ramp, float64(n-1-i)/ramp))
}

// textMS is how long the tone voice speaks a text: about 15 characters a
// second, within sensible bounds.
func textMS(text string) int {
	return min(max(65*len(text), 400), 30000)
}

// Espeak speaks text with espeak-ng and returns it at 24 kHz.
func Espeak(ctx context.Context, text string) ([]int16, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "espeak-ng", "--stdout", "-v", "en-us", "-s", "165")
	cmd.Stdin = bytes.NewBufferString(text)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	wav, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("realtimesim: espeak-ng: %w: %s", err, stderr.String())
	}
	pcm, rate, err := parseWAV(wav)
	if err != nil {
		return nil, fmt.Errorf("realtimesim: espeak-ng output: %w", err)
	}
	return resample(pcm, rate, SampleRate), nil
}

// parseWAV reads mono 16-bit PCM WAV. espeak-ng writes a streaming header
// whose data size may be 0xFFFFFFFF, so the data runs to the end of input.
func parseWAV(b []byte) ([]int16, int, error) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, 0, errors.New("not a RIFF/WAVE file")
	}
	rate, channels, bits := 0, 0, 0
	for p := 12; p+8 <= len(b); {
		id, size := string(b[p:p+4]), int(binary.LittleEndian.Uint32(b[p+4:p+8]))
		body := b[p+8:]
		switch id {
		case "fmt ":
			if len(body) < 16 {
				return nil, 0, errors.New("short fmt chunk")
			}
			channels = int(binary.LittleEndian.Uint16(body[2:4]))
			rate = int(binary.LittleEndian.Uint32(body[4:8]))
			bits = int(binary.LittleEndian.Uint16(body[14:16]))
		case "data":
			if channels != 1 || bits != 16 || rate <= 0 {
				return nil, 0, fmt.Errorf("want mono 16-bit PCM, got %d channels %d bits %d Hz", channels, bits, rate)
			}
			if size < 0 || size > len(body) {
				size = len(body)
			}
			pcm := make([]int16, size/2)
			for i := range pcm {
				pcm[i] = int16(binary.LittleEndian.Uint16(body[2*i:]))
			}
			return pcm, rate, nil
		}
		if size < 0 || size > len(body) {
			break
		}
		p += 8 + size + size%2
	}
	return nil, 0, errors.New("no data chunk")
}

// resample converts by linear interpolation; good enough for test speech.
func resample(in []int16, from, to int) []int16 {
	if from == to || len(in) == 0 {
		return in
	}
	n := int(int64(len(in)) * int64(to) / int64(from))
	out := make([]int16, n)
	for i := range out {
		pos := float64(i) * float64(from) / float64(to)
		j := int(pos)
		frac := pos - float64(j)
		a := float64(in[j])
		b := a
		if j+1 < len(in) {
			b = float64(in[j+1])
		}
		out[i] = int16(a + (b-a)*frac)
	}
	return out
}

// encodePCM is the wire form of audio: base64 of little-endian int16. It is
// written independently of the client's codec on purpose, so a byte-order
// mistake on either side shows up in tests instead of cancelling out.
func encodePCM(pcm []int16) string {
	var buf bytes.Buffer
	buf.Grow(2 * len(pcm))
	_ = binary.Write(&buf, binary.LittleEndian, pcm)
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

func decodePCM(s string) ([]int16, error) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if len(raw)%2 != 0 {
		return nil, fmt.Errorf("%d bytes is not whole 16-bit samples", len(raw))
	}
	// By hand: binary.Read goes through reflection, and a call sends 50
	// chunks a second.
	pcm := make([]int16, len(raw)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	return pcm, nil
}
