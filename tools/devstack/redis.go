package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// redisService runs Debian's redis-server with AOF on, like production's
// durable Redis, so tests can restart it without losing jobs.
type redisService struct {
	bin  string
	port int
	p    *proc
}

func (r *redisService) name() string              { return "redis" }
func (r *redisService) logPath(dir string) string { return filepath.Join(dir, "redis.log") }
func (r *redisService) endpoint() string          { return r.url() }
func (r *redisService) url() string               { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }
func (r *redisService) stop()                     { r.p.stop(stopGrace) }

func (r *redisService) env() []envVar {
	return []envVar{
		{"REDIS_URL", r.url()},
		// Tests that restart or break Redis start private instances with it.
		{"DEVSTACK_REDIS_SERVER", r.bin},
	}
}

func (r *redisService) start(ctx context.Context, dir string) error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return fmt.Errorf("redis-server not found (run scripts/install-deps.sh): %w", err)
	}
	if r.bin, err = filepath.Abs(bin); err != nil {
		return fmt.Errorf("redis-server path: %w", err)
	}
	data := filepath.Join(dir, "redis")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return fmt.Errorf("redis data dir: %w", err)
	}
	return retryOnClash(ctx, func() error {
		if r.port, err = freePort(); err != nil {
			return err
		}
		r.p, err = startProc("redis", r.logPath(dir), nil, r.bin,
			"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
			"--appendonly", "yes", "--dir", data, "--save", "")
		if err != nil {
			return err
		}
		if err := r.p.waitReady(ctx, readyTimeout, r.ready); err != nil {
			r.p.stop(stopGrace)
			return err
		}
		return nil
	})
}

// ready PINGs and checks the server answering is ours (by pid), since a
// port that was free when picked may belong to someone else by now.
func (r *redisService) ready(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", r.port))
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	rd := bufio.NewReader(conn)
	if _, err := io.WriteString(conn, "PING\r\n"); err != nil {
		return err
	}
	line, err := rd.ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	info, err := redisInfoServer(conn, rd)
	if err != nil {
		return err
	}
	if want := "process_id:" + strconv.Itoa(r.p.pid()); !strings.Contains(info, want+"\r\n") {
		return fmt.Errorf("port %d answered by another redis (want %s)", r.port, want)
	}
	return nil
}

func redisInfoServer(w io.Writer, rd *bufio.Reader) (string, error) {
	if _, err := io.WriteString(w, "INFO server\r\n"); err != nil {
		return "", err
	}
	head, err := rd.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(head, "$") {
		return "", fmt.Errorf("INFO answered %q", strings.TrimSpace(head))
	}
	n, err := strconv.Atoi(strings.TrimSpace(head[1:]))
	if err != nil || n < 0 {
		return "", fmt.Errorf("INFO answered %q", strings.TrimSpace(head))
	}
	body := make([]byte, n+2)
	if _, err := io.ReadFull(rd, body); err != nil {
		return "", err
	}
	return string(body), nil
}
