package main

import (
	"bufio"
	"context"
	"errors"
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
func (r *redisService) url() string               { return "redis://" + r.addr() + "/0" }
func (r *redisService) addr() string              { return fmt.Sprintf("127.0.0.1:%d", r.port) }
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
	conn, rd, err := redisDial(ctx, r.addr())
	if err != nil {
		return err
	}
	defer conn.Close()
	pong, err := redisDo(conn, rd, "PING")
	if err != nil {
		return err
	}
	if len(pong) != 1 || pong[0] != "PONG" {
		return fmt.Errorf("PING answered %q", pong)
	}
	info, err := redisDo(conn, rd, "INFO", "server")
	if err != nil {
		return err
	}
	if want := "process_id:" + strconv.Itoa(r.p.pid()); len(info) != 1 || !strings.Contains(info[0], want+"\r\n") {
		return fmt.Errorf("port %d answered by another redis (want %s)", r.port, want)
	}
	return nil
}

// redisCommand runs one command on a connection of its own.
func redisCommand(ctx context.Context, addr string, args ...string) ([]string, error) {
	conn, rd, err := redisDial(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return redisDo(conn, rd, args...)
}

func redisDial(ctx context.Context, addr string) (net.Conn, *bufio.Reader, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	return conn, bufio.NewReader(conn), nil
}

// redisDo sends a command and reads its reply, enough of RESP2 for the
// commands devstack sends: a simple string, integer or bulk string comes
// back as one element, an array of those as its elements; an error reply
// is an error.
func redisDo(w io.Writer, rd *bufio.Reader, args ...string) ([]string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return nil, err
	}
	head, err := redisLine(rd)
	if err != nil {
		return nil, err
	}
	if head[0] != '*' {
		v, err := redisValue(rd, head)
		return []string{v}, err
	}
	n, err := strconv.Atoi(head[1:])
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%s answered %q", args[0], head)
	}
	out := make([]string, 0, n)
	for range n {
		line, err := redisLine(rd)
		if err != nil {
			return nil, err
		}
		v, err := redisValue(rd, line)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func redisLine(rd *bufio.Reader) (string, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty RESP line")
	}
	return line, nil
}

// redisValue reads the scalar whose header line is head.
func redisValue(rd *bufio.Reader, head string) (string, error) {
	switch head[0] {
	case '+', ':':
		return head[1:], nil
	case '-':
		return "", fmt.Errorf("redis: %s", head[1:])
	case '$':
		n, err := strconv.Atoi(head[1:])
		if err != nil || n < -1 {
			return "", fmt.Errorf("bad bulk header %q", head)
		}
		if n == -1 {
			return "", nil
		}
		body := make([]byte, n+2)
		if _, err := io.ReadFull(rd, body); err != nil {
			return "", err
		}
		return string(body[:n]), nil
	}
	return "", fmt.Errorf("unexpected RESP %q", head)
}
