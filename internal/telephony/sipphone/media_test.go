package sipphone

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/telephony/calleesim"
	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// The two laws are the right way round (silence is 0xFF in µ-law, 0xD5 in
// A-law, ITU-T G.711) and a round trip keeps a tone within G.711's
// quantisation noise.
func TestCodecLaws(t *testing.T) {
	silence := make([]int16, 4)
	for c, want := range map[Codec]byte{PCMU: 0xFF, PCMA: 0xD5} {
		b := make([]byte, 4)
		c.encode(b, silence)
		require.Equal(t, []byte{want, want, want, want}, b, c)

		tone := calleesim.Tone(1000, 100*time.Millisecond, SampleRate, 0.5)
		back := c.Companded(tone)
		var noise float64
		for i := range tone {
			d := float64(back[i]) - float64(tone[i])
			noise += d * d
		}
		snr := 10 * math.Log10(sumSquares(tone)/noise)
		require.Greater(t, snr, 30.0, "%s keeps the tone (SNR %.1f dB)", c, snr)
	}
	require.NoError(t, PCMA.validate())
	require.ErrorContains(t, Codec("G729").validate(), "Script.Codec")
}

func sumSquares(pcm []int16) float64 {
	var s float64
	for _, v := range pcm {
		s += float64(v) * float64(v)
	}
	return s
}

// The speaker lays utterances end to end on its send timeline and marks
// them heard only once their last frame went out.
func TestSpeakerTimeline(t *testing.T) {
	s := &speaker{}
	first := s.say(make([]int16, 200))
	second := s.say(calleesim.Tone(500, 10*time.Millisecond, SampleRate, 0.3)) // 80 samples
	frame := make([]int16, frameSamples)
	t0 := time.Now()

	fin := s.fill(frame, t0)
	require.Empty(t, fin)
	s.sent(fin, t0.Add(20*time.Millisecond))
	fin = s.fill(frame, t0.Add(20*time.Millisecond)) // 40 of the first, 80 of the second
	require.Len(t, fin, 2)
	require.Equal(t, make([]int16, 40), frame[120:], "past the second utterance: silence")
	require.NotZero(t, frame[41], "the second utterance follows at once")
	select {
	case <-first:
		t.Fatal("done before its last frame was sent")
	default:
	}
	s.sent(fin, t0.Add(40*time.Millisecond))
	<-first
	<-second
	said := s.utterances()
	require.Equal(t, []Utterance{
		{Start: t0, End: t0.Add(40 * time.Millisecond), StartPos: 0, EndPos: 200},
		{Start: t0.Add(20 * time.Millisecond), End: t0.Add(40 * time.Millisecond), StartPos: 200, EndPos: 280},
	}, said)

	cut := s.say(make([]int16, 1000))
	queued := s.say(make([]int16, 10))
	s.fill(frame, t0.Add(60*time.Millisecond))
	s.stop(t0.Add(70 * time.Millisecond))
	<-cut
	<-queued
	said = s.utterances()
	require.Len(t, said, 3, "a queued utterance that never started is not said")
	require.Equal(t, Utterance{Start: t0.Add(60 * time.Millisecond), End: t0.Add(70 * time.Millisecond), StartPos: 320, EndPos: 480, Cleared: true}, said[2])
}

// ev is one telephone-event packet.
type ev struct {
	ts     uint32
	marker bool
	code   byte
	end    bool
	dur    uint16
}

func (e ev) packet() (rtp.Header, []byte) {
	p := []byte{e.code, 10, 0, 0}
	if e.end {
		p[1] |= 0x80
	}
	binary.BigEndian.PutUint16(p[2:], e.dur)
	return rtp.Header{Timestamp: e.ts, Marker: e.marker, PayloadType: 101}, p
}

// digit is one key press as n packets 20 ms apart on one timestamp, the
// first with the marker, then the end packet three times (RFC 4733 2.5.1.4)
// with the event's full duration.
func digit(ts uint32, code byte, n int, endDur uint16) []ev {
	var out []ev
	for i := range n {
		out = append(out, ev{ts: ts, marker: i == 0, code: code, dur: uint16(160 * (i + 1))})
	}
	for range 3 {
		out = append(out, ev{ts: ts, code: code, end: true, dur: endDur})
	}
	return out
}

// livekitDigit is a key press as media-sdk's dtmf.Write sends it: 12
// packets, then the end (260 ms) three times.
func livekitDigit(ts uint32, code byte) []ev { return digit(ts, code, 12, 2080) }

// diagoDigit is a key press as diago's writer sends it: four packets and
// three ends (100 ms); consecutive presses share the timestamp.
func diagoDigit(ts uint32, code byte) []ev { return digit(ts, code, 4, 800) }

func TestListenerReadsTelephoneEvents(t *testing.T) {
	cases := map[string]struct {
		packets []ev
		keys    string
		ended   []bool
		dur     time.Duration
	}{
		"livekit 2#":                {packets: append(livekitDigit(1000, 2), livekitDigit(1000+4000, 11)...), keys: "2#", ended: []bool{true, true}, dur: 260 * time.Millisecond},
		"diago 22 on one timestamp": {packets: append(diagoDigit(1000, 2), diagoDigit(1000, 2)...), keys: "22", ended: []bool{true, true}, dur: 100 * time.Millisecond},
		"start packets lost":        {packets: livekitDigit(1000, 5)[12:], keys: "5", ended: []bool{true}, dur: 260 * time.Millisecond},
		"end packets lost":          {packets: append(livekitDigit(1000, 1)[:12], livekitDigit(5000, 9)...), keys: "19", ended: []bool{false, true}},
		"not an event":              {packets: []ev{{ts: 1000, marker: true, code: 200}}, keys: ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			call := newCall(Record{CallID: "c", Number: number}, newRecording(DefaultSpeechThreshold, time.Second), make(chan struct{}), zap.NewNop())
			l := &listener{dtmfPT: 101, call: call}
			t0 := time.Now()
			for i, e := range tc.packets {
				h, p := e.packet()
				l.event(t0.Add(time.Duration(i)*20*time.Millisecond), h, p)
			}
			l.event(t0, rtp.Header{PayloadType: 101}, []byte{1, 2}) // too short: ignored
			rec := call.Record()
			require.Equal(t, tc.keys, rec.Keys())
			for i, d := range rec.Digits {
				require.Equal(t, tc.ended[i], !d.End.IsZero(), "digit %d ended", i)
				if tc.ended[i] && tc.dur != 0 {
					require.Equal(t, tc.dur, d.Duration)
				}
				require.False(t, d.At.IsZero())
			}
		})
	}
}

func TestScriptsAndConfigAreValidated(t *testing.T) {
	p := newPhone(t, Config{})
	for _, tc := range []struct {
		script Script
		field  string
	}{
		{Script{Status: 200}, "Script.Status"},
		{Script{Status: 99}, "Script.Status"},
		{Script{Ring: -time.Second}, "Script.Ring"},
		{Script{Codec: "G722"}, "Script.Codec"},
		{Script{Steps: []Step{Say(nil), {}}}, "Script.Steps[1]"},
		{Script{Transfer: Transfer{Refuse: 200}}, "Script.Transfer"},
		{Script{Transfer: Transfer{Result: 100}}, "Script.Transfer"},
	} {
		require.ErrorContains(t, p.Handle(number, tc.script), tc.field)
	}
	require.ErrorContains(t, p.Handle("", Script{}), "number")
	require.NoError(t, p.Handle(number, Script{Ring: RingForever, Status: 486, Codec: PCMA}))

	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{Addr: "localhost:5070"}, "Config.Addr"},
		{Config{Addr: "127.0.0.1"}, "Config.Addr"},
		{Config{Addr: "127.0.0.1:0", Auth: &Auth{Password: "x"}}, "Config.Auth"},
		{Config{Addr: "127.0.0.1:0", Default: Script{Status: 1}}, "Config.Default"},
		{Config{Addr: p.Addr().String()}, "Config.Addr"}, // taken
	} {
		_, err := Start(tc.cfg)
		require.ErrorContains(t, err, tc.field)
	}
}
