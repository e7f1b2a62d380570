// Package testenv gives integration tests the real servers started by
// tools/devstack (`make test` runs `devstack exec -- go test ...`, which
// exports the stack's settings as environment variables).
//
// The tests run inside the stack's private network namespace: loopback and
// one dummy address (NetnsAddr), which LiveKit and its SIP service offer
// for media, and no route anywhere else. A test that runs a SIP phone makes
// its own outbound trunk to it (NewOutboundTrunk).
//
// Outside `make test` the variables are missing and integration tests skip,
// so `go test ./...` still works for a quick unit run. Under `make test`
// DOCSHIELD_REQUIRE_STACK=1 turns a missing variable into a failure, so CI
// can never pass by skipping.
package testenv

import (
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// RequireStackVar is set to 1 by `make test`.
const RequireStackVar = "DOCSHIELD_REQUIRE_STACK"

// Get returns the value of an environment variable the stack exports, or
// skips (fails under make test) when it is missing.
func Get(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv(RequireStackVar) == "1" {
			t.Fatalf("%s is not set but %s=1: the devstack did not export it", name, RequireStackVar)
		}
		t.Skipf("%s not set: run under `make test` (tools/devstack) for integration tests", name)
	}
	return v
}

// RedisURL is the devstack's shared Redis.
func RedisURL(t testing.TB) string { return Get(t, "REDIS_URL") }

// MongoURI is the devstack's MongoDB wire-protocol server (FerretDB).
func MongoURI(t testing.TB) string { return Get(t, "MONGODB_URI") }

// S3Env holds the devstack's MinIO settings.
type S3Env struct {
	Endpoint, Region, AccessKeyID, SecretAccessKey, Bucket string
}

// S3 returns the devstack's MinIO settings. Bucket is the stack's bucket,
// created with versioning, default encryption and a lifecycle rule.
func S3(t testing.TB) S3Env {
	t.Helper()
	return S3Env{
		Endpoint:        Get(t, "S3_ENDPOINT"),
		Region:          Get(t, "AWS_REGION"),
		AccessKeyID:     Get(t, "AWS_ACCESS_KEY_ID"),
		SecretAccessKey: Get(t, "AWS_SECRET_ACCESS_KEY"),
		Bucket:          Get(t, "S3_BUCKET"),
	}
}

var nonName = regexp.MustCompile(`[^a-zA-Z0-9_]+`)

// UniqueName returns a short name derived from the test's name plus a random
// suffix, safe as a MongoDB database name, Redis key prefix or S3 key part,
// so tests sharing one server never see each other's data.
func UniqueName(t testing.TB) string {
	t.Helper()
	base := strings.ToLower(nonName.ReplaceAllString(t.Name(), "_"))
	if len(base) > 40 {
		base = base[:40]
	}
	return "t_" + base + "_" + randomHex(t, 4)
}

// FreePort returns a port on 127.0.0.1, free for TCP and UDP when picked,
// for a server a test starts. The kernel hands out ports in its ephemeral
// range to every outgoing connection (the worker's, the servers'), and one
// took a port picked by listening on :0 before redis-server bound it. So
// the port comes from below that range, where only a bind takes it: at
// random, never twice in this process, and never while another test
// process holds it (a lock file each, held until the test ends: go test
// runs several packages' binaries at once, and two picking the same port
// before either bound it shared one Redis).
func FreePort(t testing.TB) int {
	t.Helper()
	lo, hi := freePortRange()
	if hi-lo < 1000 { // an ephemeral range spanning almost every port
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := lo + rand.IntN(hi-lo)
		if portsGiven[port] {
			continue
		}
		release, ok := holdPort(port)
		if !ok {
			continue
		}
		if !portFree(port) {
			release()
			continue
		}
		portsGiven[port] = true
		t.Cleanup(release)
		return port
	}
	t.Fatalf("no free port in %d-%d after 1000 tries", lo, hi)
	return 0
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{} // guarded by portsMu
)

// holdPort takes port's lock file, shared by every test process on the
// machine, without waiting; release gives it back. A process that dies
// gives its locks back with it (flock). Where no lock file can be made
// (a read-only temp dir), it holds nothing and says yes: the bind check
// and the in-process record still apply.
func holdPort(port int) (release func(), ok bool) {
	dir := portLockDir()
	if dir == "" {
		return func() {}, true
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return func() {}, true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return func() { f.Close() }, true // closing the file drops its lock
}

// portLockDir is where the port locks live, made once per process; "" if
// it cannot be made.
var portLockDir = sync.OnceValue(func() string {
	dir := filepath.Join(os.TempDir(), "docshield-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return ""
	}
	return dir
})

// freePortRange is [10000, the ephemeral range's first port), or a range
// of its own size above the ephemeral range's end when that start is too
// low to leave room.
func freePortRange() (lo, hi int) {
	ephLo, ephHi := 32768, 60999 // Linux's default
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			a, errA := strconv.Atoi(f[0])
			z, errZ := strconv.Atoi(f[1])
			if errA == nil && errZ == nil && a <= z {
				ephLo, ephHi = a, z
			}
		}
	}
	if ephLo-10000 >= 5000 {
		return 10000, ephLo
	}
	return ephHi + 1, 65536
}

func portFree(port int) bool {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	u.Close()
	return true
}
