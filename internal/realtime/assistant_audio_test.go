package realtime

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

func TestPlayoutDropsDeltasOfTruncatedItem(t *testing.T) {
	var p assistantItems
	require.True(t, p.onDelta("a", "r1", 2400))
	p.find("a").truncated = true
	require.False(t, p.onDelta("a", "r1", 2400), "audio past the cut is stale")
	require.Equal(t, 2400, p.find("a").received)
	require.True(t, p.onDelta("b", "r2", 100), "a new item plays")
	require.Equal(t, "b", p.newest().id)
}

func TestPlayoutKeepsRecentItemsOnly(t *testing.T) {
	var p assistantItems
	for i := range 3 * keepItems {
		p.onDelta(fmt.Sprint("item", i), "r", 1)
	}
	require.Len(t, p.items, keepItems)
	require.Nil(t, p.find("item0"))
	require.NotNil(t, p.find(fmt.Sprint("item", 3*keepItems-1)))
}

// A Session with no socket: enough to exercise the local bookkeeping.
func bareSession(queue int) *Session {
	return &Session{cfg: Config{AudioQueue: queue}, log: zap.NewNop(), audio: make(chan *audioMsg, queue),
		control: make(chan []byte, 8), done: make(chan struct{})}
}

func TestMarkPlayedClampsAndInterruptSkipsHeardItems(t *testing.T) {
	s := bareSession(1)
	s.play.onDelta("a", "r", MSToSamples(500))
	s.MarkPlayed("a", MSToSamples(800))
	require.Equal(t, 500, s.AssistantAudio().PlayedMS, "cannot have played more than arrived")
	s.play.onDone("a")
	in, err := s.Interrupt("")
	require.NoError(t, err)
	require.Zero(t, in, "fully heard: nothing to truncate")
	require.Empty(t, s.control)

	s.play.onDelta("b", "r2", MSToSamples(500))
	s.MarkPlayed("b", MSToSamples(120))
	in, err = s.Interrupt("")
	require.NoError(t, err)
	require.Equal(t, Truncation{ItemID: "b", PlayedMS: 120, ReceivedMS: 500}, in)
	require.JSONEq(t, `{"type":"conversation.item.truncate","event_id":"evt_c1","item_id":"b","content_index":0,"audio_end_ms":120}`, string(<-s.control))
	in, err = s.Interrupt("unknown")
	require.NoError(t, err)
	require.Zero(t, in)
}

func TestSendAudioDropsOldestWhenQueueIsFull(t *testing.T) {
	s := bareSession(2)
	for i := range 3 {
		require.NoError(t, s.SendAudio([]int16{int16(i + 1)}))
	}
	st := s.Stats()
	require.Equal(t, int64(3), st.InputChunks)
	require.Equal(t, int64(1), st.InputChunksDropped)
	// The freshest audio survives: chunks 2 and 3, in order.
	require.Equal(t, string(appendAudioEvent(nil, []int16{2})), string((<-s.audio).b))
	require.Equal(t, string(appendAudioEvent(nil, []int16{3})), string((<-s.audio).b))

	require.NoError(t, s.SendAudio(nil), "empty audio is a no-op")
	close(s.done)
	require.ErrorIs(t, s.SendAudio([]int16{1}), ErrClosed)
}

// Callee audio goes in batches of InputBatch: two 20 ms chunks make one
// input_audio_buffer.append, a dropped message counts both its chunks, and
// a batch the chunks stop filling still goes out.
func TestSendAudioBatchesChunks(t *testing.T) {
	s := bareSession(1)
	s.cfg.InputBatch = 40 * time.Millisecond
	s.batch = MSToSamples(40)
	chunk := func(v int16) []int16 {
		pcm := make([]int16, MSToSamples(20))
		for i := range pcm {
			pcm[i] = v
		}
		return pcm
	}
	for i := range 4 {
		require.NoError(t, s.SendAudio(chunk(int16(i+1))))
	}
	st := s.Stats()
	require.Equal(t, int64(4), st.InputChunks)
	require.Equal(t, int64(2), st.InputChunksDropped, "the first message, both its chunks, made way for the second")
	msg := <-s.audio
	require.Equal(t, 2, msg.chunks)
	require.Equal(t, string(appendAudioEvent(nil, append(chunk(3), chunk(4)...))), string(msg.b))

	require.NoError(t, s.SendAudio(chunk(5)))
	require.Empty(t, s.audio, "half a batch waits for the next chunk")
	select {
	case msg = <-s.audio:
	case <-time.After(5 * time.Second):
		t.Fatal("a batch the chunks stopped filling was never sent")
	}
	require.Equal(t, 1, msg.chunks)
	require.Equal(t, string(appendAudioEvent(nil, chunk(5))), string(msg.b))
	close(s.done)
}
