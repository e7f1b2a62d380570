package telephony

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/twitchtv/twirp"
)

// Verify errors: errors.Is tells an operator which thing to fix.
var (
	ErrUnreachable    = errors.New("telephony: LiveKit is unreachable")
	ErrBadCredentials = errors.New("telephony: LiveKit rejected the API key or secret")
)

// VerifyTimeout bounds Verify when ctx has no earlier deadline.
const VerifyTimeout = 10 * time.Second

// Verify checks that LiveKit answers at cfg.URL and accepts the API key and
// secret, by listing rooms (a read-only call every valid key may make).
func Verify(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, VerifyTimeout)
	defer cancel()
	client := lksdk.NewRoomServiceClient(cfg.URL, cfg.APIKey, cfg.APISecret)
	_, err := client.ListRooms(ctx, &livekit.ListRoomsRequest{})
	return verifyError(cfg.URL, err)
}

func verifyError(rawURL string, err error) error {
	if err == nil {
		return nil
	}
	host := rawURL
	if u, perr := url.Parse(rawURL); perr == nil {
		host = u.Host
	}
	if te, ok := errors.AsType[twirp.Error](err); ok {
		switch te.Code() {
		case twirp.Unauthenticated, twirp.PermissionDenied:
			// The server's message can echo the signed token: never pass it on.
			return fmt.Errorf("%w (LIVEKIT_API_KEY / LIVEKIT_API_SECRET, server %s)", ErrBadCredentials, host)
		}
	}
	var netErr net.Error
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.As(err, &opErr) || errors.As(err, &dnsErr) || errors.As(err, &netErr) ||
		errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w at %s (LIVEKIT_URL): %w", ErrUnreachable, host, err)
	}
	if te, ok := errors.AsType[twirp.Error](err); ok && te.Meta("http_error_from_intermediary") == "true" {
		// Something answered, but not LiveKit's API (a proxy, a wrong port).
		return fmt.Errorf("%w at %s (LIVEKIT_URL): HTTP %s from something that is not LiveKit", ErrUnreachable, host, te.Meta("status_code"))
	}
	return fmt.Errorf("telephony: LiveKit at %s: %w", host, err)
}

// ErrTrunkNotFound: LiveKit has no outbound SIP trunk with the configured
// id (LIVEKIT_SIP_TRUNK_ID).
var ErrTrunkNotFound = errors.New("telephony: LiveKit has no outbound SIP trunk with this id")

// Trunk is what LiveKit holds of an outbound SIP trunk, as an operator
// checks it: never its password.
type Trunk struct {
	ID, Name  string
	Address   string   // the carrier's SIP address the INVITEs go to
	Transport string   // UDP, TCP, TLS, or "" (LiveKit's default, UDP)
	Numbers   []string // the trunk's numbers: the caller IDs it may present
	// AuthUsername is the digest username; HasPassword says whether a
	// password is set (it is never read back).
	AuthUsername string
	HasPassword  bool
}

// InspectTrunk reads the outbound trunk cfg.SIPTrunkID from LiveKit's SIP
// API (it needs the key's SIP admin grant).
func InspectTrunk(ctx context.Context, cfg Config) (Trunk, error) {
	if err := cfg.Validate(); err != nil {
		return Trunk{}, err
	}
	if cfg.SIPTrunkID == "" {
		return Trunk{}, errors.New("telephony: SIPTrunkID is required to inspect the trunk")
	}
	ctx, cancel := context.WithTimeout(ctx, VerifyTimeout)
	defer cancel()
	client := lksdk.NewSIPClient(cfg.URL, cfg.APIKey, cfg.APISecret)
	found, err := client.GetSIPOutboundTrunksByIDs(ctx, []string{cfg.SIPTrunkID})
	if te, ok := errors.AsType[twirp.Error](err); ok && te.Code() == twirp.PermissionDenied {
		return Trunk{}, fmt.Errorf("%w: reading SIP trunks needs the SIP admin grant (LIVEKIT_API_KEY)", ErrBadCredentials)
	}
	if err != nil {
		return Trunk{}, verifyError(cfg.URL, err)
	}
	if len(found) == 0 || found[0] == nil {
		return Trunk{}, fmt.Errorf("%w: %s (LIVEKIT_SIP_TRUNK_ID)", ErrTrunkNotFound, cfg.SIPTrunkID)
	}
	in := found[0]
	tr := Trunk{
		ID: in.GetSipTrunkId(), Name: in.GetName(), Address: in.GetAddress(),
		Numbers: append([]string(nil), in.GetNumbers()...), AuthUsername: in.GetAuthUsername(),
		HasPassword: in.GetAuthPassword() != "",
	}
	switch in.GetTransport() {
	case livekit.SIPTransport_SIP_TRANSPORT_UDP:
		tr.Transport = "UDP"
	case livekit.SIPTransport_SIP_TRANSPORT_TCP:
		tr.Transport = "TCP"
	case livekit.SIPTransport_SIP_TRANSPORT_TLS:
		tr.Transport = "TLS"
	}
	return tr, nil
}
