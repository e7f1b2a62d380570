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
