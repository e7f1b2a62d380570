package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
)

// livekitService runs a single-node LiveKit server with media kept on
// loopback: only the lo interface, loopback ICE candidates, and no STUN
// lookups of an external address.
type livekitService struct {
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
func (l *livekitService) stop()                     { l.p.stop(stopGrace) }

func (l *livekitService) endpoint() string {
	return fmt.Sprintf("%s  (rtc tcp %d, udp %d-%d)", l.url(), l.tcpPort, l.udpStart, l.udpStart+udpRangeWidth-1)
}

func (l *livekitService) env() []envVar {
	return []envVar{
		{"LIVEKIT_URL", l.url()},
		{"LIVEKIT_API_KEY", l.apiKey},
		{"LIVEKIT_API_SECRET", l.apiSecret},
	}
}

// config is LiveKit's YAML. Keys and ports are hex and digits, so plain
// interpolation cannot break the YAML.
func (l *livekitService) config() string {
	return fmt.Sprintf(`port: %d
bind_addresses: ["127.0.0.1"]
rtc:
  tcp_port: %d
  port_range_start: %d
  port_range_end: %d
  node_ip: 127.0.0.1
  use_external_ip: false
  enable_loopback_candidate: true
  interfaces:
    includes: ["lo"]
keys:
  %s: %s
logging:
  level: info
`, l.port, l.tcpPort, l.udpStart, l.udpStart+udpRangeWidth-1, l.apiKey, l.apiSecret)
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
		// 0600: the file holds the API secret.
		if err := os.WriteFile(cfgPath, []byte(l.config()), 0o600); err != nil {
			return fmt.Errorf("livekit config: %w", err)
		}
		l.p, err = startProc("livekit", l.logPath(dir), nil, l.bin, "--config", cfgPath)
		if err != nil {
			return err
		}
		if err := l.p.waitReady(ctx, readyTimeout, l.ready); err != nil {
			l.p.stop(stopGrace)
			return err
		}
		return nil
	})
}

func (l *livekitService) ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", l.port), nil)
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
