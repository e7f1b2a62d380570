package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// LiveKitServer is a private LiveKit server for one test, which the test
// may kill to take the media of its calls away. Like the stack's it offers
// only the namespace's own address for media (see tools/devstack).
type LiveKitServer struct {
	t   testing.TB
	dir string
	srv *server
	// Env is the server's URL and credentials, as LiveKitEnv.
	Env LiveKitEnv
}

// StartLiveKit starts a private LiveKit server; it is killed when the test
// ends.
func StartLiveKit(t testing.TB) *LiveKitServer {
	t.Helper()
	bin := Get(t, "DEVSTACK_LIVEKIT_SERVER")
	addr := NetnsAddr(t)
	link, err := linkWithAddr(addr)
	if err != nil {
		t.Fatalf("private livekit: %v", err)
	}
	secret := make([]byte, 24)
	_, _ = rand.Read(secret)
	l := &LiveKitServer{t: t, dir: t.TempDir()}
	port, tcp := FreePort(t), FreePort(t)
	udp := freeUDPRange(t, addr, 50)
	key := "private" + hex.EncodeToString(secret[:3])
	l.Env = LiveKitEnv{URL: "ws://127.0.0.1:" + strconv.Itoa(port), APIKey: key, APISecret: hex.EncodeToString(secret)}
	cfg := fmt.Sprintf(`port: %d
bind_addresses: ["127.0.0.1"]
rtc:
  tcp_port: %d
  port_range_start: %d
  port_range_end: %d
  node_ip: %s
  use_external_ip: false
  interfaces:
    includes: [%q]
keys:
  %s: %s
logging:
  level: info
`, port, tcp, udp, udp+49, addr, link, key, l.Env.APISecret)
	cfgPath := filepath.Join(l.dir, "livekit.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfgPath)
	logPath := filepath.Join(l.dir, "livekit.log")
	out, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	l.srv = launch(t, cmd, logPath, 60*time.Second, 50*time.Millisecond, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(port)+"/", nil)
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
	})
	t.Cleanup(l.Kill)
	return l
}

// Kill stops the server at once (SIGKILL), as a crash or a lost data
// centre does. Idempotent.
func (l *LiveKitServer) Kill() {
	if l.srv != nil {
		l.srv.stop()
		l.srv = nil
	}
}

// linkWithAddr names the interface that holds addr: the stack's dummy
// link, inside the namespace the tests run in.
func linkWithAddr(addr string) (string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, i := range ifs {
		as, _ := i.Addrs()
		for _, a := range as {
			if ip, _, err := net.ParseCIDR(a.String()); err == nil && ip.String() == addr {
				return i.Name, nil
			}
		}
	}
	return "", fmt.Errorf("no interface holds %s: run inside devstack's namespace", addr)
}

// freeUDPRange finds n consecutive UDP ports on addr that are free now.
func freeUDPRange(t testing.TB, addr string, n int) int {
	t.Helper()
	for try := 0; try < 200; try++ {
		base := 20000 + int(randUint16()%30000)
		ok := true
		var held []net.PacketConn
		for p := base; p < base+n && ok; p++ {
			c, err := net.ListenPacket("udp", net.JoinHostPort(addr, strconv.Itoa(p)))
			if err != nil {
				ok = false
				break
			}
			held = append(held, c)
		}
		for _, c := range held {
			c.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no %d free UDP ports in a row", n)
	return 0
}

func randUint16() uint16 {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return uint16(b[0])<<8 | uint16(b[1])
}
