package calleesim

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"time"
)

// Speech renders text as spoken audio: espeak-ng writes a WAV, sox turns
// it into mono 16-bit PCM at rate. Both come from Debian (espeak-ng, sox).
func Speech(ctx context.Context, text string, rate int) ([]int16, error) {
	if text == "" {
		return nil, errors.New("calleesim: Speech needs text")
	}
	wav, err := run(ctx, nil, "espeak-ng", "--stdout", "--", text)
	if err != nil {
		return nil, err
	}
	return toPCM(ctx, wav, "wav", rate)
}

// LoadAudio reads an audio file sox understands (WAV and others) as mono
// 16-bit PCM at rate.
func LoadAudio(ctx context.Context, path string, rate int) ([]int16, error) {
	out, err := run(ctx, nil, "sox", path, "-t", "raw", "-e", "signed-integer", "-b", "16", "-L", "-c", "1", "-r", strconv.Itoa(rate), "-")
	if err != nil {
		return nil, err
	}
	return decodeLE16(out), nil
}

func toPCM(ctx context.Context, in []byte, inType string, rate int) ([]int16, error) {
	out, err := run(ctx, in, "sox", "-t", inType, "-", "-t", "raw", "-e", "signed-integer", "-b", "16", "-L", "-c", "1", "-r", strconv.Itoa(rate), "-")
	if err != nil {
		return nil, err
	}
	return decodeLE16(out), nil
}

func run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	if _, err := exec.LookPath(name); err != nil {
		return nil, fmt.Errorf("calleesim: %s is not installed (apt-get install -y espeak-ng sox): %w", name, err)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("calleesim: %s: %w: %s", name, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

func decodeLE16(b []byte) []int16 {
	pcm := make([]int16, len(b)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return pcm
}

// Tone is a sine wave at freq Hz lasting d, amplitude in 0..1 of full scale.
func Tone(freq float64, d time.Duration, rate int, amplitude float64) []int16 {
	n := int(int64(d) * int64(rate) / int64(time.Second))
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16(amplitude * math.MaxInt16 * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
	}
	return pcm
}

// ToneLevel is the RMS amplitude of the freq Hz component of pcm (Goertzel),
// so a test can tell a known tone from noise or other speech.
func ToneLevel(pcm []int16, freq float64, rate int) float64 {
	if len(pcm) == 0 {
		return 0
	}
	w := 2 * math.Pi * freq / float64(rate)
	coeff := 2 * math.Cos(w)
	var s1, s2 float64
	for _, x := range pcm {
		s0 := float64(x) + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	power := s1*s1 + s2*s2 - coeff*s1*s2
	// A full-length sine of amplitude A gives power (A*N/2)^2.
	amp := 2 * math.Sqrt(math.Max(power, 0)) / float64(len(pcm))
	return amp / math.Sqrt2
}
