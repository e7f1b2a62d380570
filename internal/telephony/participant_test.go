package telephony

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/livekit/protocol/livekit"
	"github.com/stretchr/testify/require"
)

// testRoom is a room for the test, deleted when it ends.
func testRoom(t *testing.T, cfg Config) string {
	t.Helper()
	rooms, err := NewRooms(cfg, nil)
	require.NoError(t, err)
	room, err := rooms.Create(testCtx(t), testenv.UniqueName(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rooms.Delete(context.Background(), room) })
	return room
}

// heardLevel collects the peer audio a participant delivered.
type heardLevel struct {
	mu      sync.Mutex
	samples int
	loud    int
}

func (h *heardLevel) add(pcm []int16) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.samples += len(pcm)
	for _, v := range pcm {
		if v > 2000 || v < -2000 {
			h.loud++
		}
	}
}

func (h *heardLevel) loudSamples() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.loud
}

// speak joins room as identity and keeps saying a tone, until the test ends.
func speak(t *testing.T, cfg Config, room, identity string) *Participant {
	t.Helper()
	p, err := Join(testCtx(t), cfg, room, ParticipantOptions{Identity: identity, Peer: AgentIdentity})
	require.NoError(t, err)
	t.Cleanup(p.Close)
	tone := make([]int16, 10*cfg.sampleRate())
	for i := range tone {
		tone[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(i)/float64(cfg.sampleRate())))
	}
	require.NoError(t, p.Player().Write("tone", tone))
	return p
}

// The agent joins before the dial, without knowing the callee's identity:
// the one LiveKit's reply names. A callee whose track was subscribed before
// SetPeer is heard from then on, and one that left before is reported gone.
func TestSetPeerHandsOverATrackSubscribedBefore(t *testing.T) {
	cfg := liveKit(t)
	ctx := testCtx(t)
	room := testRoom(t, cfg)

	heard := &heardLevel{}
	agent, err := Join(ctx, cfg, room, ParticipantOptions{Identity: AgentIdentity, OnPeerAudio: heard.add})
	require.NoError(t, err)
	t.Cleanup(agent.Close)
	require.Empty(t, agent.Peer())

	speak(t, cfg, room, "someone-else")
	callee := speak(t, cfg, room, "sip_callee_42")
	require.Eventually(t, func() bool {
		agent.mu.Lock()
		defer agent.mu.Unlock()
		return len(agent.writers) == 2
	}, 30*time.Second, 10*time.Millisecond, "both tracks were subscribed before the peer was named")
	require.Zero(t, heard.loudSamples(), "nobody is heard before the peer is named")

	require.NoError(t, agent.SetPeer("sip_callee_42"))
	require.Equal(t, "sip_callee_42", agent.Peer())
	agent.mu.Lock()
	require.Len(t, agent.writers, 1, "the other participant's track is no longer received")
	agent.mu.Unlock()
	select {
	case <-agent.PeerAudio():
	case <-ctx.Done():
		t.Fatal("the peer's track, subscribed before SetPeer, was never heard")
	}
	require.Eventually(t, func() bool { return heard.loudSamples() > cfg.sampleRate()/2 }, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, agent.SetPeer("sip_callee_42"), "naming the same peer again is fine")
	require.Error(t, agent.SetPeer("someone-else"), "the peer does not change")

	callee.Close()
	select {
	case <-agent.PeerLeft():
	case <-ctx.Done():
		t.Fatal("the peer left, but PeerLeft never closed")
	}
}

// A peer that left before it was named is reported gone at once.
func TestSetPeerOfAPeerThatLeft(t *testing.T) {
	cfg := liveKit(t)
	ctx := testCtx(t)
	room := testRoom(t, cfg)
	agent, err := Join(ctx, cfg, room, ParticipantOptions{Identity: AgentIdentity})
	require.NoError(t, err)
	t.Cleanup(agent.Close)

	callee := speak(t, cfg, room, "sip_callee_7")
	require.Eventually(t, func() bool {
		agent.mu.Lock()
		defer agent.mu.Unlock()
		return len(agent.writers) == 1
	}, 30*time.Second, 10*time.Millisecond)
	callee.Close()
	require.Eventually(t, func() bool {
		agent.mu.Lock()
		defer agent.mu.Unlock()
		return len(agent.gone) == 1
	}, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, agent.SetPeer("sip_callee_7"))
	select {
	case <-agent.PeerLeft():
	default:
		t.Fatal("a peer that left before SetPeer is gone")
	}
	require.Error(t, agent.SetPeer(""))
}

// LiveKit's SIP service marks its participant sip.callStatus=hangup when
// the call ends. A callee so marked is gone, though LiveKit still holds
// their seat (the SIP service's leave can be lost): PeerLeft closes, and
// the server-side presence check says they are not there.
func TestPeerWhoseSIPCallHungUpIsGone(t *testing.T) {
	cfg := liveKit(t)
	ctx := testCtx(t)
	room := testRoom(t, cfg)
	agent, err := Join(ctx, cfg, room, ParticipantOptions{Identity: AgentIdentity, Peer: "sip_callee_9"})
	require.NoError(t, err)
	t.Cleanup(agent.Close)
	speak(t, cfg, room, "sip_callee_9")
	rooms, err := NewRooms(cfg, nil)
	require.NoError(t, err)
	select {
	case <-agent.PeerAudio():
	case <-ctx.Done():
		t.Fatal("the callee was never heard")
	}
	in, err := rooms.HasParticipant(ctx, room, "sip_callee_9")
	require.NoError(t, err)
	require.True(t, in)

	// As the SIP service does (its own participant's attributes); the
	// server sends the change to the room.
	_, err = rooms.client.UpdateParticipant(ctx, &livekit.UpdateParticipantRequest{Room: room, Identity: "sip_callee_9",
		Attributes: map[string]string{livekit.AttrSIPCallStatus: "active"}})
	require.NoError(t, err)
	_, err = rooms.client.UpdateParticipant(ctx, &livekit.UpdateParticipantRequest{Room: room, Identity: "sip_callee_9",
		Attributes: map[string]string{livekit.AttrSIPCallStatus: SIPCallHungUp}})
	require.NoError(t, err)
	select {
	case <-agent.PeerLeft():
	case <-ctx.Done():
		t.Fatal("the callee's SIP call hung up, but PeerLeft never closed")
	}
	in, err = rooms.HasParticipant(ctx, room, "sip_callee_9")
	require.NoError(t, err)
	require.False(t, in, "a callee whose SIP call hung up is not there")
	all, err := rooms.Participants(ctx, room)
	require.NoError(t, err)
	require.Contains(t, all, "sip_callee_9", "LiveKit still holds the seat")
}
