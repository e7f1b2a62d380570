package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
)

// sipService runs LiveKit's SIP service (livekit-sip) beside LiveKit, on
// the same Redis bus, and provisions one outbound trunk that sends its
// INVITEs to where the phone simulator of `make dev` listens, with digest
// authentication as a carrier's trunk would have. Tests that run their own
// phone make their own trunks (internal/testenv).
//
// livekit-sip listens on 0.0.0.0, which inside the stack's namespace is lo
// and the dummy link only. It announces the dummy address in its Contact
// and SDP: the phone sends ACK, BYE and RTP there. health_port stays
// unset (it would bind all interfaces too, and nothing here reads it).
type sipService struct {
	redis   *redisService
	livekit *livekitService

	bin      string
	port     int // SIP signalling, UDP and TCP
	rtpStart int
	p        *proc

	trunk devTrunk
}

// devTrunk is the outbound trunk made for `make dev`'s phone.
type devTrunk struct {
	id                 string
	phoneAddr          string // host:port the trunk dials
	username, password string // digest credentials the phone checks
	number             string // the trunk's caller ID
}

// devTrunkNumber is the dev trunk's number, a fictional one (555-01xx).
const devTrunkNumber = "+15550100001"

func (s *sipService) name() string              { return "sip" }
func (s *sipService) server() builtServer       { return sipServer }
func (s *sipService) setBinary(path string)     { s.bin = path }
func (s *sipService) logPath(dir string) string { return filepath.Join(dir, "livekit-sip.log") }
func (s *sipService) after() []string           { return []string{"redis", "livekit"} }

// sipStopSignal is SIGINT: on SIGTERM livekit-sip waits for every call to
// end.
const sipStopSignal = syscall.SIGINT

func (s *sipService) stop() { s.p.stopWith(sipStopSignal, stopGrace) }

func (s *sipService) endpoint() string {
	return fmt.Sprintf("sip:%s:%d (udp/tcp, rtp %d-%d)  trunk %s -> phone %s",
		netnsAddr, s.port, s.rtpStart, s.rtpStart+udpRangeWidth-1, s.trunk.id, s.trunk.phoneAddr)
}

func (s *sipService) env() []envVar {
	return []envVar{
		{"LIVEKIT_SIP_TRUNK_ID", s.trunk.id},
		{"DEVSTACK_SIP_PHONE_ADDR", s.trunk.phoneAddr},
		{"DEVSTACK_SIP_PHONE_USER", s.trunk.username},
		{"DEVSTACK_SIP_PHONE_PASSWORD", s.trunk.password},
		{"DEVSTACK_SIP_TRUNK_NUMBER", s.trunk.number},
	}
}

// config is livekit-sip's YAML (github.com/livekit/sip pkg/config).
// Everything interpolated is hex, digits, dots or a ws:// URL of those.
func (s *sipService) config() string {
	return fmt.Sprintf(`api_key: %s
api_secret: %s
ws_url: %s
redis:
  address: %s
  db: %d
sip_port: %d
rtp_port:
  start: %d
  end: %d
use_external_ip: false
nat_1_to_1_ip: %s
# A busy CI machine must not make it refuse calls (default 0.9).
max_cpu_utilization: 1.0
logging:
  level: info
`, s.livekit.apiKey, s.livekit.apiSecret, s.livekit.url(), s.redis.addr(), livekitRedisDB,
		s.port, s.rtpStart, s.rtpStart+udpRangeWidth-1, netnsAddr)
}

func (s *sipService) start(ctx context.Context, dir string) error {
	cfgPath := filepath.Join(dir, "livekit-sip.yaml")
	err := retryOnClash(ctx, func() error {
		var err error
		if s.port, err = freeUDPAndTCPPort(); err != nil {
			return err
		}
		if s.rtpStart, err = freeUDPRange(); err != nil {
			return err
		}
		srv := configServer{name: "livekit-sip", bin: s.bin, logPath: s.logPath(dir), cfgPath: cfgPath, stopSig: sipStopSignal}
		s.p, err = srv.start(ctx, s.config(), s.ready)
		return err
	})
	if err != nil {
		return err
	}
	if err := s.provisionTrunk(ctx); err != nil {
		s.stop()
		return fmt.Errorf("outbound trunk: %w", err)
	}
	return nil
}

// sipRPCChannel is the Redis channel livekit-sip subscribes to for
// LiveKit's CreateSIPParticipant requests (psrpc's naming).
const sipRPCChannel = "SIPInternal|CreateSIPParticipant|REQ"

// ready waits for what a dial needs: livekit-sip listening on Redis for
// CreateSIPParticipant, which it does only after its SIP listeners are up.
func (s *sipService) ready(ctx context.Context) error {
	reply, err := redisCommand(ctx, s.redis.addr(), "PUBSUB", "NUMSUB", sipRPCChannel)
	if err != nil {
		return err
	}
	// NUMSUB answers [channel, count].
	if len(reply) != 2 || reply[1] == "0" {
		return fmt.Errorf("livekit-sip has not subscribed to %s yet (NUMSUB %v)", sipRPCChannel, reply)
	}
	return nil
}

// provisionTrunk creates the dev trunk through LiveKit's SIP API, as an
// operator would, pointing at a port free for the phone simulator.
func (s *sipService) provisionTrunk(ctx context.Context) error {
	port, err := freeUDPAndTCPPort()
	if err != nil {
		return err
	}
	s.trunk = devTrunk{
		phoneAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		username:  "devstack-" + randomHex(4),
		password:  randomHex(16),
		number:    devTrunkNumber,
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client := lksdk.NewSIPClient(s.livekit.httpURL(), s.livekit.apiKey, s.livekit.apiSecret)
	info, err := client.CreateSIPOutboundTrunk(ctx, &livekit.CreateSIPOutboundTrunkRequest{
		Trunk: &livekit.SIPOutboundTrunkInfo{
			Name:         "devstack phone",
			Address:      s.trunk.phoneAddr,
			Transport:    livekit.SIPTransport_SIP_TRANSPORT_UDP,
			Numbers:      []string{s.trunk.number},
			AuthUsername: s.trunk.username,
			AuthPassword: s.trunk.password,
		},
	})
	if err != nil {
		return err
	}
	if info.GetSipTrunkId() == "" {
		return errors.New("LiveKit returned no trunk id")
	}
	s.trunk.id = info.GetSipTrunkId()
	return nil
}

// freeUDPAndTCPPort returns a port on 127.0.0.1 free for both UDP and TCP
// a moment ago: SIP listens on both.
func freeUDPAndTCPPort() (int, error) {
	var last error
	for range 20 {
		port, err := freePort()
		if err != nil {
			return 0, err
		}
		c, err := net.ListenPacket("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			c.Close()
			return port, nil
		}
		last = err
	}
	return 0, fmt.Errorf("no port free for both UDP and TCP: %w", last)
}
