package recording

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/hraban/opus.v2"
)

// The filler every decoder plays as silence: libopus decodes it to 20 ms
// of exact zeros.
func TestSilencePacketIsTwentyMillisecondsOfZeros(t *testing.T) {
	dec, err := opus.NewDecoder(48000, 1)
	require.NoError(t, err)
	pcm := make([]int16, 5760)
	n, err := dec.Decode(silence, pcm)
	require.NoError(t, err)
	require.Equal(t, frame48, n)
	require.Equal(t, make([]int16, frame48), pcm[:n])
	p, err := parseOpus(silence, nil)
	require.NoError(t, err)
	require.Equal(t, frame48, p.duration())
	require.False(t, p.stereo())
}

// Packets of every frame-count code parse into the frames libopus finds
// (the same decoded audio, frame by frame), and a frame written back as a
// packet of its own, self-delimited or not, is what the frame was.
func TestParseOpusFindsTheFramesOfEveryCode(t *testing.T) {
	// Two 10 ms CELT frames (restricted low delay) of a tone.
	enc, err := opus.NewEncoder(48000, 1, opus.AppRestrictedLowdelay)
	require.NoError(t, err)
	s := callScript{Bursts: []burst{{Side: callee, To: time.Second, Freq: 440}}}
	var frames [][]byte
	buf := make([]byte, maxPacket)
	pcm := s.pcm(callee, 0, 40*time.Millisecond) // 960 samples: 20 ms at 48 kHz
	for i := range 2 {
		n, err := enc.Encode(pcm[i*480:(i+1)*480], buf)
		require.NoError(t, err)
		require.Zero(t, buf[0]&3)
		frames = append(frames, append([]byte(nil), buf[1:n]...))
	}
	toc := buf[0]
	equal := append([]byte(nil), frames[0]...)
	f0, f1 := frames[0], frames[1]
	require.NotEqual(t, len(f0), len(f1)+1, "the VBR cases need frames of different lengths")
	cases := map[string]struct {
		pkt  []byte
		want [][]byte
	}{
		"code 0":                {append([]byte{toc}, f0...), [][]byte{f0}},
		"code 1":                {append(append([]byte{toc | 1}, equal...), equal...), [][]byte{equal, equal}},
		"code 2":                {append(appendFrameLength([]byte{toc | 2}, len(f0)), append(append([]byte(nil), f0...), f1...)...), [][]byte{f0, f1}},
		"code 3 CBR":            {append(append([]byte{toc | 3, 2}, equal...), equal...), [][]byte{equal, equal}},
		"code 3 VBR":            {append(appendFrameLength([]byte{toc | 3, 0x80 | 2}, len(f0)), append(append([]byte(nil), f0...), f1...)...), [][]byte{f0, f1}},
		"code 3 VBR, 300 B pad": {append(append(appendFrameLength([]byte{toc | 3, 0xc0 | 2, 255, 46}, len(f0)), append(append([]byte(nil), f0...), f1...)...), make([]byte, 300)...), [][]byte{f0, f1}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p, err := parseOpus(c.pkt, nil)
			require.NoError(t, err)
			require.Equal(t, c.want, p.frames)
			require.Equal(t, 480*len(c.want), p.duration())
			// libopus agrees: the packet decodes as its frames do, one by one.
			whole := decodeAll(t, c.pkt)
			var parts []int16
			d := newDecoder(t)
			for i := range p.frames {
				alone := p.appendFrame(nil, i, false)
				parts = append(parts, decodeWith(t, d, alone)...)
				sd := p.appendFrame(nil, i, true)
				n, used, err := frameLength(sd[1:])
				require.NoError(t, err)
				require.Equal(t, len(p.frames[i]), n)
				require.Equal(t, alone[1:], sd[1+used:])
			}
			require.Equal(t, whole, parts)
		})
	}
	for name, bad := range map[string][]byte{
		"empty":                 {},
		"code 1, odd":           {toc | 1, 1, 2, 3},
		"code 2, long first":    {toc | 2, 10, 1},
		"code 3, no count":      {toc | 3},
		"code 3, zero frames":   {toc | 3, 0},
		"code 3, over 120 ms":   {toc | 3, 13},
		"code 3, pad too long":  {toc | 3, 0x41, 10, 1},
		"code 3, CBR uneven":    {toc | 3, 2, 1, 2, 3},
		"code 3, VBR too short": {toc | 3, 0x82, 10, 1},
		"frame over 1275 bytes": append([]byte{toc}, make([]byte, 1276)...),
	} {
		_, err := parseOpus(bad, nil)
		require.ErrorIs(t, err, errPacket, name)
	}
}

func newDecoder(t *testing.T) *opus.Decoder {
	d, err := opus.NewDecoder(48000, 1)
	require.NoError(t, err)
	return d
}

func decodeWith(t *testing.T, d *opus.Decoder, pkt []byte) []int16 {
	pcm := make([]int16, 5760)
	n, err := d.Decode(pkt, pcm)
	require.NoError(t, err)
	return pcm[:n]
}

func decodeAll(t *testing.T, pkt []byte) []int16 { return decodeWith(t, newDecoder(t), pkt) }

// Senders whose packets do not fit the 20 ms grid as they are: 40 ms
// packets of two 20 ms CELT frames are split; 60 ms SILK packets, 10 ms
// packets and stereo packets are decoded and encoded again for that side.
// Either way each side's audio lands where it was heard, on its own
// channel, and the stream stays two mono 20 ms streams.
func TestSendersOfOtherPacketShapesAreFittedToTheGrid(t *testing.T) {
	t.Parallel()
	cases := map[string][2]senderKind{
		"40 ms of two CELT frames":     {{Frame: 40 * time.Millisecond, LowDelay: true}, {LowDelay: true}},
		"60 ms SILK and 10 ms packets": {{Frame: 60 * time.Millisecond}, {Frame: 10 * time.Millisecond}},
		"stereo":                       {{Stereo: true}, {Stereo: true}},
	}
	for name, kinds := range cases {
		t.Run(name, func(t *testing.T) {
			st := newMemStorage(t)
			rec := newTestRecorder(t, st, Options{SegmentDuration: 2 * time.Second}, nil)
			s := bargeInScript
			s.Jitter, s.Senders = false, kinds
			s.feed(t, rec, testStart())
			res, err := rec.Finish(context.Background())
			require.NoError(t, err)
			require.Zero(t, res.Stats.InvalidPackets)
			data, _ := st.get(res.Stored.Key)
			requireWellFormed(t, data, true)
			requireAudioMatches(t, decodeOgg(t, data), s, s.Length, 20*time.Millisecond)
		})
	}
}

// The stream's structure survives a byte-level look: nothing but whole
// multistream packets, the callee's first.
func TestEveryPacketHoldsBothStreams(t *testing.T) {
	st := newMemStorage(t)
	rec := newTestRecorder(t, st, Options{}, nil)
	bargeInScript.feed(t, rec, testStart())
	res, err := rec.Finish(context.Background())
	require.NoError(t, err)
	data, _ := st.get(res.Stored.Key)
	pages := requireWellFormed(t, data, true)
	silent := 0
	for _, p := range pages[2:] {
		for _, pkt := range p.packets {
			if bytes.HasSuffix(pkt, silence) {
				silent++
			}
		}
	}
	// The agent speaks 3 s of the 11: the rest of its stream is filler.
	require.InDelta(t, 8000/20, silent, 10)
}
