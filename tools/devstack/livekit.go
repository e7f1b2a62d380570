package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"syscall"
)

// livekitService runs a single-node LiveKit server. Its API listens on
// 127.0.0.1; media uses the namespace's dummy address (pion offers no
// loopback ICE candidates), with no STUN lookup of an external address.
// With Redis in the stack it uses it as its bus, which is how it reaches
// the SIP service.
type livekitService struct {
	redis             *redisService // nil: no bus, no SIP
	bin               string
	port, tcpPort     int
	udpStart          int
	apiKey, apiSecret string
	p                 *proc
}

func (l *livekitService) name() string              { return "livekit" }
func (l *livekitService) server() builtServer       { return livekitServer }
func (l *livekitService) setBinary(path string)     { l.bin = path }
func (l *livekitService) logPath(dir string) string { return filepath.Join(dir, "livekit.log") }
func (l *livekitService) url() string               { return fmt.Sprintf("ws://127.0.0.1:%d", l.port) }
func (l *livekitService) httpURL() string           { return fmt.Sprintf("http://127.0.0.1:%d", l.port) }
func (l *livekitService) stop()                     { l.p.stop(stopGrace) }

func (l *livekitService) endpoint() string {
	return fmt.Sprintf("%s  (rtc tcp %d, udp %d-%d)", l.url(), l.tcpPort, l.udpStart, l.udpStart+udpRangeWidth-1)
}

func (l *livekitService) env() []envVar {
	return []envVar{
		{"LIVEKIT_URL", l.url()},
		{"LIVEKIT_API_KEY", l.apiKey},
		{"LIVEKIT_API_SECRET", l.apiSecret},
		// Tests that kill LiveKit mid-call start private servers with it.
		{"DEVSTACK_LIVEKIT_SERVER", l.bin},
	}
}

// livekitRedisDB keeps LiveKit's and the SIP service's keys out of the
// worker's database (0), so neither sees the other's data.
const livekitRedisDB = 1

func (l *livekitService) after() []string {
	if l.redis == nil {
		return nil
	}
	return []string{"redis"}
}

// config is LiveKit's YAML. Keys, addresses and ports are hex, digits and
// dots, so plain interpolation cannot break the YAML.
func (l *livekitService) config() string {
	redis := ""
	if l.redis != nil {
		redis = fmt.Sprintf("redis:\n  address: %s\n  db: %d\n", l.redis.addr(), livekitRedisDB)
	}
	return fmt.Sprintf(`port: %d
bind_addresses: ["127.0.0.1"]
rtc:
  tcp_port: %d
  port_range_start: %d
  port_range_end: %d
  node_ip: %s
  use_external_ip: false
  interfaces:
    includes: [%q]
%skeys:
  %s: %s
logging:
  level: info
`, l.port, l.tcpPort, l.udpStart, l.udpStart+udpRangeWidth-1, netnsAddr, netnsLink, redis, l.apiKey, l.apiSecret)
}

func (l *livekitService) start(ctx context.Context, dir string) error {
	l.apiKey = "devkey" + randomHex(6)
	l.apiSecret = randomHex(24)
	cfgPath := filepath.Join(dir, "livekit.yaml")
	return retryOnClash(ctx, func() error {
		ports, err := freePorts(2)
		if err != nil {
			return err
		}
		l.port, l.tcpPort = ports[0], ports[1]
		if l.udpStart, err = freeUDPRange(); err != nil {
			return err
		}
		srv := configServer{name: "livekit", bin: l.bin, logPath: l.logPath(dir), cfgPath: cfgPath, stopSig: syscall.SIGTERM}
		l.p, err = srv.start(ctx, l.config(), l.ready)
		return err
	})
}

func (l *livekitService) ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.httpURL()+"/", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /: %s", resp.Status)
	}
	return nil
}
