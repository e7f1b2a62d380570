package telephony

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/stretchr/testify/require"
)

// liveKit returns the devstack's LiveKit server (skips without it).
func liveKit(t *testing.T) Config {
	t.Helper()
	return Config{
		URL:       testenv.Get(t, "LIVEKIT_URL"),
		APIKey:    testenv.Get(t, "LIVEKIT_API_KEY"),
		APISecret: testenv.Get(t, "LIVEKIT_API_SECRET"),
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestVerify(t *testing.T) {
	cfg := liveKit(t)
	ctx := testCtx(t)
	require.NoError(t, Verify(ctx, cfg))

	bad := cfg
	bad.APISecret = "not-the-secret-not-the-secret-not-the"
	err := Verify(ctx, bad)
	require.ErrorIs(t, err, ErrBadCredentials)
	require.NotContains(t, err.Error(), bad.APISecret)
	require.NotContains(t, err.Error(), "eyJ", "no token in the message")

	bad = cfg
	bad.APIKey = "unknown-key"
	require.ErrorIs(t, Verify(ctx, bad), ErrBadCredentials)

	down := cfg
	down.URL = fmt.Sprintf("ws://127.0.0.1:%d", testenv.FreePort(t))
	err = Verify(ctx, down)
	require.ErrorIs(t, err, ErrUnreachable)
	require.NotErrorIs(t, err, ErrBadCredentials)
	require.ErrorContains(t, err, "LIVEKIT_URL")

	require.ErrorContains(t, Verify(ctx, Config{URL: cfg.URL}), "APIKey", "settings are checked before any request")
}

func TestRoomsCreateAndHangup(t *testing.T) {
	cfg := liveKit(t)
	cfg.MaxParticipants = 3
	ctx := testCtx(t)
	rooms, err := NewRooms(cfg, nil)
	require.NoError(t, err)
	attempt := testenv.UniqueName(t)

	name, err := rooms.Create(ctx, attempt)
	require.NoError(t, err)
	require.Equal(t, RoomName(attempt), name)

	list, err := lksdk.NewRoomServiceClient(cfg.URL, cfg.APIKey, cfg.APISecret).ListRooms(ctx, &livekit.ListRoomsRequest{Names: []string{name}})
	require.NoError(t, err)
	require.Len(t, list.Rooms, 1)
	room := list.Rooms[0]
	require.EqualValues(t, 3, room.MaxParticipants)
	require.EqualValues(t, DefaultEmptyTimeout.Seconds(), room.EmptyTimeout)
	require.EqualValues(t, DefaultDepartureTimeout.Seconds(), room.DepartureTimeout)
	var meta RoomMetadata
	require.NoError(t, json.Unmarshal([]byte(room.Metadata), &meta))
	require.Equal(t, attempt, meta.AttemptID)

	leg := CallLeg{Room: name, Identity: DefaultCalleeIdentity} // callee never joined
	require.NoError(t, rooms.Hangup(ctx, leg))
	exists, err := rooms.Exists(ctx, name)
	require.NoError(t, err)
	require.False(t, exists)
	require.NoError(t, rooms.Hangup(ctx, leg), "hanging up twice is fine")

	// At shutdown the call's context is already canceled: the hang-up
	// still happens.
	name, err = rooms.Create(ctx, attempt+"-2")
	require.NoError(t, err)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	require.NoError(t, rooms.Hangup(canceled, CallLeg{Room: name, Identity: DefaultCalleeIdentity}))
	exists, err = rooms.Exists(ctx, name)
	require.NoError(t, err)
	require.False(t, exists)
}

func TestRoomNameIsSafeAndStable(t *testing.T) {
	require.Equal(t, "call-6650f0c2a1b2", RoomName("6650f0c2a1b2"))
	require.Equal(t, "call-a_b_c", RoomName("a/b c"))
	require.Equal(t, RoomName("x"), RoomName("x"))
}

// A trunk LiveKit does not know fails the dial cleanly, as failed, with
// LiveKit's reason kept (sip_test.go runs the answered and refused dials).
func TestSIPDialerWithAnUnknownTrunk(t *testing.T) {
	cfg := liveKit(t)
	cfg.SIPTrunkID = "ST_missing"
	ctx := testCtx(t)
	room := testRoom(t, cfg)

	d, err := NewSIPDialer(cfg)
	require.NoError(t, err)
	_, err = d.Dial(ctx, DialRequest{Room: room, To: "+15557654321", RingTimeout: 5 * time.Second})
	outcome := OutcomeOf(err)
	require.Equal(t, Failed, outcome)
	require.ErrorIs(t, err, ErrDialFailed)
	require.True(t, strings.Contains(err.Error(), "sip"), "LiveKit's reason is kept: %v", err)
}

func TestConfigValidate(t *testing.T) {
	good := Config{URL: "wss://x.livekit.cloud", APIKey: "k", APISecret: "s"}
	require.NoError(t, good.Validate())
	for name, c := range map[string]Config{
		"URL":             {URL: "x.livekit.cloud", APIKey: "k", APISecret: "s"},
		"APIKey":          {URL: good.URL, APISecret: "s"},
		"APISecret":       {URL: good.URL, APIKey: "k"},
		"CallerID":        {URL: good.URL, APIKey: "k", APISecret: "s", CallerID: "555"},
		"RingTimeout":     {URL: good.URL, APIKey: "k", APISecret: "s", RingTimeout: -1},
		"MaxParticipants": {URL: good.URL, APIKey: "k", APISecret: "s", MaxParticipants: 1},
		"SampleRate":      {URL: good.URL, APIKey: "k", APISecret: "s", SampleRate: 44100},
	} {
		require.ErrorContains(t, c.Validate(), name)
	}
}
