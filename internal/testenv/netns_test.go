package testenv_test

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/testenv"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/stretchr/testify/require"
)

// Tests run in devstack's private network namespace: loopback plus one
// dummy link holding the stack's address, and no route anywhere else.
func TestStackNamespaceHoldsOnlyLoopbackAndTheDummyLink(t *testing.T) {
	addr := testenv.NetnsAddr(t)
	ifaces, err := net.Interfaces()
	require.NoError(t, err)
	var names []string
	var dummy net.Interface
	for _, ifc := range ifaces {
		names = append(names, ifc.Name)
		if ifc.Flags&net.FlagLoopback == 0 {
			dummy = ifc
		}
	}
	require.Len(t, names, 2, "interfaces %v: want lo and the dummy link only", names)
	require.Contains(t, names, "lo")
	addrs, err := dummy.Addrs()
	require.NoError(t, err)
	require.Len(t, addrs, 1, "%s: %v (no IPv6 on the dummy link)", dummy.Name, addrs)
	require.Equal(t, addr+"/32", addrs[0].String())

	// The main routing table is empty, so even a UDP connect, which sends
	// nothing, finds no way out.
	routes, err := os.ReadFile("/proc/net/route")
	require.NoError(t, err)
	lines := slices.DeleteFunc(strings.Split(strings.TrimSpace(string(routes)), "\n"), func(s string) bool { return s == "" })
	require.Len(t, lines, 1, "IPv4 routes besides the header:\n%s", routes)
	_, err = net.Dial("udp4", "192.0.2.1:9") // TEST-NET-1: would never be answered anyway
	require.True(t, errors.Is(err, syscall.ENETUNREACH), "dial off the namespace: want ENETUNREACH, got %v", err)
}

// WebRTC works between participants inside the namespace (pion offers no
// loopback candidates, so this goes over the dummy link's address).
func TestLiveKitMediaFlowsInsideTheNamespace(t *testing.T) {
	lk := testenv.LiveKit(t)
	room := testenv.UniqueName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	connect := func(identity string, cb *lksdk.RoomCallback) *lksdk.Room {
		r, err := lksdk.ConnectToRoom(lk.URL, lksdk.ConnectInfo{
			APIKey: lk.APIKey, APISecret: lk.APISecret, RoomName: room, ParticipantIdentity: identity,
		}, cb)
		require.NoError(t, err, "join %s", identity)
		t.Cleanup(r.Disconnect)
		return r
	}

	pub := connect("publisher", lksdk.NewRoomCallback())
	track, err := webrtc.NewTrackLocalStaticSample(
		webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "publisher")
	require.NoError(t, err)
	_, err = pub.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{Name: "silence"})
	require.NoError(t, err)
	sending := make(chan struct{})
	go func() {
		defer close(sending)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				// One 20 ms Opus frame of silence.
				_ = track.WriteSample(media.Sample{Data: []byte{0xf8, 0xff, 0xfe}, Duration: 20 * time.Millisecond})
			}
		}
	}()
	defer func() { cancel(); <-sending }()

	received := make(chan struct{})
	cb := lksdk.NewRoomCallback()
	cb.OnTrackSubscribed = func(tr *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, _ *lksdk.RemoteParticipant) {
		go func() {
			if _, _, err := tr.ReadRTP(); err == nil {
				close(received)
			}
		}()
	}
	connect("subscriber", cb)
	select {
	case <-received:
	case <-ctx.Done():
		t.Fatal("no RTP reached the subscriber through LiveKit inside the namespace")
	}
}
