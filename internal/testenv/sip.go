package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
)

// LiveKitEnv holds the devstack's LiveKit settings.
type LiveKitEnv struct {
	URL, APIKey, APISecret string
}

// LiveKit returns the devstack's LiveKit server (with the SIP service
// attached over Redis).
func LiveKit(t testing.TB) LiveKitEnv {
	t.Helper()
	return LiveKitEnv{
		URL:       Get(t, "LIVEKIT_URL"),
		APIKey:    Get(t, "LIVEKIT_API_KEY"),
		APISecret: Get(t, "LIVEKIT_API_SECRET"),
	}
}

// SIPClient is LiveKit's SIP API client for the devstack's server.
func (lk LiveKitEnv) SIPClient() *lksdk.SIPClient {
	return lksdk.NewSIPClient(lk.URL, lk.APIKey, lk.APISecret)
}

// RoomClient is LiveKit's room API client for the devstack's server.
func (lk LiveKitEnv) RoomClient() *lksdk.RoomServiceClient {
	return lksdk.NewRoomServiceClient(lk.URL, lk.APIKey, lk.APISecret)
}

// SIPEnv is the outbound trunk devstack provisions for `make dev`'s phone.
// Tests that run a phone of their own make their own trunk with
// NewOutboundTrunk, so packages running in parallel never share a port.
type SIPEnv struct {
	TrunkID   string // LIVEKIT_SIP_TRUNK_ID
	PhoneAddr string // DEVSTACK_SIP_PHONE_ADDR: host:port the trunk sends INVITEs to (UDP)
	Username  string // DEVSTACK_SIP_PHONE_USER: digest username the trunk authenticates with
	Password  string // DEVSTACK_SIP_PHONE_PASSWORD
	Number    string // DEVSTACK_SIP_TRUNK_NUMBER: the trunk's number (caller ID)
}

// SIP returns the devstack's SIP trunk settings.
func SIP(t testing.TB) SIPEnv {
	t.Helper()
	return SIPEnv{
		TrunkID:   Get(t, "LIVEKIT_SIP_TRUNK_ID"),
		PhoneAddr: Get(t, "DEVSTACK_SIP_PHONE_ADDR"),
		Username:  Get(t, "DEVSTACK_SIP_PHONE_USER"),
		Password:  Get(t, "DEVSTACK_SIP_PHONE_PASSWORD"),
		Number:    Get(t, "DEVSTACK_SIP_TRUNK_NUMBER"),
	}
}

// NetnsAddr is the stack's media address: the one address, besides
// loopback, of the private network namespace devstack runs everything in.
// LiveKit and the SIP service announce it for RTP and ICE.
func NetnsAddr(t testing.TB) string { return Get(t, "DEVSTACK_NETNS_ADDR") }

// Trunk is an outbound SIP trunk made for one test.
type Trunk struct {
	ID       string
	Address  string // host:port its INVITEs go to, over UDP
	Number   string // its number, the default caller ID
	Username string // digest credentials it answers a 401/407 with
	Password string
}

// TrunkAuth is the digest credentials of a trunk.
type TrunkAuth struct {
	Username, Password string
}

// NewTrunkAuth returns fresh digest credentials, for a phone that must
// know them before its trunk exists (it is started first, on a free port).
func NewTrunkAuth(t testing.TB) TrunkAuth {
	t.Helper()
	return TrunkAuth{Username: "phone-" + randomHex(t, 4), Password: randomHex(t, 16)}
}

// NewOutboundTrunk provisions, through LiveKit's SIP API, an outbound trunk
// that sends INVITEs to addr (a loopback or the stack's own address, where
// the test's phone listens), authenticating with fresh digest credentials,
// as a carrier's trunk would. It is deleted when the test ends.
func NewOutboundTrunk(t testing.TB, addr string) Trunk {
	t.Helper()
	return NewOutboundTrunkWithAuth(t, addr, NewTrunkAuth(t))
}

// NewOutboundTrunkWithAuth is NewOutboundTrunk with the credentials given.
func NewOutboundTrunkWithAuth(t testing.TB, addr string, auth TrunkAuth) Trunk {
	t.Helper()
	lk := LiveKit(t)
	checkLocalAddr(t, addr)
	tr := Trunk{
		Address:  addr,
		Number:   "+1555010" + randomDigits(t, 4), // fictional (555-01xx)
		Username: auth.Username,
		Password: auth.Password,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sip := lk.SIPClient()
	info, err := sip.CreateSIPOutboundTrunk(ctx, &livekit.CreateSIPOutboundTrunkRequest{
		Trunk: &livekit.SIPOutboundTrunkInfo{
			Name:         UniqueName(t),
			Address:      addr,
			Transport:    livekit.SIPTransport_SIP_TRANSPORT_UDP,
			Numbers:      []string{tr.Number},
			AuthUsername: tr.Username,
			AuthPassword: tr.Password,
		},
	})
	if err != nil {
		t.Fatalf("CreateSIPOutboundTrunk to %s: %v", addr, err)
	}
	tr.ID = info.GetSipTrunkId()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := sip.DeleteSIPTrunk(ctx, &livekit.DeleteSIPTrunkRequest{SipTrunkId: tr.ID}); err != nil {
			t.Errorf("DeleteSIPTrunk %s: %v", tr.ID, err)
		}
	})
	return tr
}

// checkLocalAddr keeps trunks on loopback (or the namespace's address):
// tests never dial anything else.
func checkLocalAddr(t testing.TB, addr string) {
	t.Helper()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("trunk address %q: want host:port: %v", addr, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !(ip.IsLoopback() || host == NetnsAddr(t)) {
		t.Fatalf("trunk address %q: want a loopback IP or the stack's %s", addr, NetnsAddr(t))
	}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func randomDigits(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	var s strings.Builder
	for _, c := range b {
		s.WriteByte('0' + c%10)
	}
	return s.String()
}
