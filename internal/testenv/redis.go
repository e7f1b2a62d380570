package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Redis is a private redis-server for one test, with AOF on
// (appendfsync always, so a SIGKILL loses no acknowledged write). Tests that
// run a worker use their own server because asynq's queue names are fixed:
// two packages sharing one Redis would take each other's tasks.
type Redis struct {
	t    testing.TB
	bin  string
	dir  string
	Port int
	srv  *server
}

// StartRedis starts a private Redis; it is killed when the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin := redisServer(t)
	r := &Redis{t: t, bin: bin, dir: t.TempDir(), Port: FreePort(t)}
	r.Start()
	t.Cleanup(r.Kill)
	return r
}

// Addr is host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// URL is a redis:// URL for REDIS_URL.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// Start (re)starts the server on the same port and data directory, and
// waits until it accepts connections and has loaded its AOF.
func (r *Redis) Start() {
	r.t.Helper()
	cmd := exec.Command(r.bin,
		"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--logfile", filepath.Join(r.dir, "redis.log"))
	// PING answers PONG once the AOF is loaded (while loading, -LOADING).
	r.srv = launch(r.t, cmd, filepath.Join(r.dir, "redis.log"), 15*time.Second, 20*time.Millisecond,
		func(ctx context.Context) error { return ping(ctx, r.Addr()) })
}

// Kill stops the server with SIGKILL, as a crash would, and waits for it.
func (r *Redis) Kill() {
	r.srv.stop()
	r.srv = nil
}

func ping(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", buf[:n])
	}
	return nil
}

// redisServer is the redis-server binary devstack names, or the one on
// PATH; without either the test skips (or fails under make test).
func redisServer(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("DEVSTACK_REDIS_SERVER")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			Get(t, "DEVSTACK_REDIS_SERVER")
		}
	}
	return bin
}
