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
	"net"
	"os"
	"regexp"
	"strings"
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

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
