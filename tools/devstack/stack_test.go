package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// availableServices is every service whose server is on this machine, so
// the tests never trigger a multi-minute build (`make tools` installs them),
// with FerretDB on $DEVSTACK_MONGO_BACKEND's backend, as devstack picks it.
func availableServices(t *testing.T) []service {
	t.Helper()
	svcs, err := selectServices(withoutMissing(t), cmp.Or(os.Getenv(mongoBackendVar), backendSQLite))
	require.NoError(t, err)
	return svcs
}

func envMap(vars []envVar) map[string]string {
	m := make(map[string]string, len(vars))
	for _, v := range vars {
		m[v.Key] = v.Value
	}
	return m
}

// serverPIDs lists the processes devstack started, to prove stop ends them.
func serverPIDs(svcs []service) []int {
	var pids []int
	for _, svc := range svcs {
		switch s := svc.(type) {
		case *redisService:
			pids = append(pids, s.p.pid())
		case *minioService:
			pids = append(pids, s.p.pid())
		case *livekitService:
			pids = append(pids, s.p.pid())
		case *sipService:
			pids = append(pids, s.p.pid())
		case *postgresService:
			pids = append(pids, s.p.pid())
		}
	}
	return pids
}

func TestStackStartsReadyServersAndStopsThem(t *testing.T) {
	svcs := availableServices(t)
	st, err := newStack("", svcs) // a directory of its own, removed on a clean stop
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(st.dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	envFile := filepath.Join(t.TempDir(), "stack.env")
	require.NoError(t, st.start(ctx, envFile))
	pids := serverPIDs(svcs)
	stopped := false
	defer func() {
		if !stopped {
			st.stop(false)
		}
	}()

	env := envMap(st.env())
	b, err := os.ReadFile(envFile)
	require.NoError(t, err)
	for k, v := range env {
		require.Contains(t, string(b), k+"="+shellQuote(v)+"\n")
	}
	require.Equal(t, "development", env["APP_ENV"])
	require.Equal(t, st.dir, env["DEVSTACK_DIR"])

	t.Run("redis", func(t *testing.T) {
		require.True(t, strings.HasPrefix(env["REDIS_URL"], "redis://127.0.0.1:"), env["REDIS_URL"])
		require.FileExists(t, env["DEVSTACK_REDIS_SERVER"])
		host := strings.TrimSuffix(strings.TrimPrefix(env["REDIS_URL"], "redis://"), "/0")
		conn, err := net.DialTimeout("tcp", host, 5*time.Second)
		require.NoError(t, err)
		defer conn.Close()
		_, err = fmt.Fprint(conn, "CONFIG GET appendonly\r\n")
		require.NoError(t, err)
		buf := make([]byte, 64)
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
		n, err := conn.Read(buf)
		require.NoError(t, err)
		require.Contains(t, string(buf[:n]), "yes", "AOF must be on so jobs survive a restart")
	})

	t.Run("mongo", func(t *testing.T) {
		require.Equal(t, "docshield", env["MONGODB_DATABASE"])
		c, err := mongo.Connect(options.Client().ApplyURI(env["MONGODB_URI"]))
		require.NoError(t, err)
		defer func() { _ = c.Disconnect(context.Background()) }()
		coll := c.Database(env["MONGODB_DATABASE"]).Collection("devstack_test")
		_, err = coll.InsertOne(ctx, map[string]any{"_id": "x"})
		require.NoError(t, err)
		_, err = coll.InsertOne(ctx, map[string]any{"_id": "x"})
		require.True(t, mongo.IsDuplicateKeyError(err), "want E11000, got %v", err)
	})

	if m, ok := envLookup(svcs, "minio").(*minioService); ok {
		t.Run("minio", func(t *testing.T) { checkBucket(ctx, t, m, env) })
	}

	if _, ok := envLookup(svcs, "livekit").(*livekitService); ok {
		t.Run("livekit", func(t *testing.T) {
			require.NotEmpty(t, env["LIVEKIT_API_KEY"])
			require.GreaterOrEqual(t, len(env["LIVEKIT_API_SECRET"]), 32)
			resp, err := http.Get("http://" + strings.TrimPrefix(env["LIVEKIT_URL"], "ws://") + "/")
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
		})
	}

	if s, ok := envLookup(svcs, "sip").(*sipService); ok {
		t.Run("sip", func(t *testing.T) { checkTrunk(ctx, t, s, env) })
	}

	mongoAddr := strings.TrimSuffix(strings.TrimPrefix(env["MONGODB_URI"], "mongodb://"), "/")
	conn, err := net.DialTimeout("tcp", mongoAddr, 5*time.Second)
	require.NoError(t, err, "FerretDB should be listening on %s", mongoAddr)
	conn.Close()

	st.stop(true)
	stopped = true
	for _, pid := range pids {
		require.True(t, processGone(pid), "server pid %d still running after stop", pid)
	}
	conn, err = net.DialTimeout("tcp", mongoAddr, 5*time.Second)
	if err == nil {
		conn.Close()
	}
	require.Error(t, err, "FerretDB still listening after stop")
	require.NoFileExists(t, envFile, "env file must not outlive the stack")
	require.NoDirExists(t, st.dir, "a clean stop removes the stack's own directory")
}

func envLookup(svcs []service, name string) service {
	for _, s := range svcs {
		if s.name() == name {
			return s
		}
	}
	return nil
}

// The bucket must look like production's, since `worker verify s3`
// reports exactly these settings, and SSE-S3 uploads must work.
func checkBucket(ctx context.Context, t *testing.T, m *minioService, env map[string]string) {
	require.Equal(t, s3Bucket, env["S3_BUCKET"])
	require.Equal(t, m.url(), env["S3_ENDPOINT"])
	c := m.client()
	bucket := aws.String(env["S3_BUCKET"])

	v, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: bucket})
	require.NoError(t, err)
	require.Equal(t, s3types.BucketVersioningStatusEnabled, v.Status)

	enc, err := c.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: bucket})
	require.NoError(t, err)
	require.Len(t, enc.ServerSideEncryptionConfiguration.Rules, 1)
	require.Equal(t, s3types.ServerSideEncryptionAes256,
		enc.ServerSideEncryptionConfiguration.Rules[0].ApplyServerSideEncryptionByDefault.SSEAlgorithm)

	lc, err := c.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: bucket})
	require.NoError(t, err)
	require.Len(t, lc.Rules, 1)
	require.Equal(t, recordingsPrefix, aws.ToString(lc.Rules[0].Filter.Prefix))
	require.Equal(t, int32(recordingsExpiryDays), aws.ToInt32(lc.Rules[0].Expiration.Days))

	_, err = c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: bucket, Key: aws.String("recordings/devstack-test"),
		Body: strings.NewReader("audio"), ServerSideEncryption: s3types.ServerSideEncryptionAes256,
	})
	require.NoError(t, err)
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: bucket, Key: aws.String("recordings/devstack-test")})
	require.NoError(t, err)
	require.Equal(t, s3types.ServerSideEncryptionAes256, head.ServerSideEncryption)
	require.NotEmpty(t, aws.ToString(head.VersionId), "versioned bucket must return a version id")
}

// The dev trunk is in LiveKit, pointing at the phone's address with the
// digest credentials the env hands the phone.
func checkTrunk(ctx context.Context, t *testing.T, s *sipService, env map[string]string) {
	require.Regexp(t, `^127\.0\.0\.1:\d+$`, env["DEVSTACK_SIP_PHONE_ADDR"])
	require.NotEmpty(t, env["DEVSTACK_SIP_PHONE_USER"])
	require.GreaterOrEqual(t, len(env["DEVSTACK_SIP_PHONE_PASSWORD"]), 32)
	client := lksdk.NewSIPClient(s.livekit.httpURL(), env["LIVEKIT_API_KEY"], env["LIVEKIT_API_SECRET"])
	res, err := client.ListSIPOutboundTrunk(ctx, &livekit.ListSIPOutboundTrunkRequest{})
	require.NoError(t, err)
	require.Len(t, res.GetItems(), 1)
	trunk := res.GetItems()[0]
	require.Equal(t, env["LIVEKIT_SIP_TRUNK_ID"], trunk.GetSipTrunkId())
	require.Equal(t, env["DEVSTACK_SIP_PHONE_ADDR"], trunk.GetAddress())
	require.Equal(t, env["DEVSTACK_SIP_PHONE_USER"], trunk.GetAuthUsername())
	require.Equal(t, []string{env["DEVSTACK_SIP_TRUNK_NUMBER"]}, trunk.GetNumbers())

	// livekit-sip takes LiveKit's requests from Redis.
	n, err := redisCommand(ctx, s.redis.addr(), "PUBSUB", "NUMSUB", sipRPCChannel)
	require.NoError(t, err)
	require.Equal(t, []string{sipRPCChannel, "1"}, n)
}

// A service waits for those it needs; a failed or cancelled start stops
// the wait.
func TestWaitForDependencies(t *testing.T) {
	sip := &sipService{}
	ready := map[string]chan struct{}{"redis": make(chan struct{}), "livekit": make(chan struct{})}
	close(ready["redis"])
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, waitFor(ctx, sip, ready), context.Canceled, "livekit is not ready")
	close(ready["livekit"])
	require.NoError(t, waitFor(context.Background(), sip, ready), "both are ready")
	require.ErrorContains(t, waitFor(context.Background(), sip, map[string]chan struct{}{}), "needs redis")
	require.NoError(t, waitFor(ctx, &mongoService{}, nil), "mongo needs nothing")
}

func TestSelectServicesKeepsSIPWithWhatItNeeds(t *testing.T) {
	_, err := selectServices("livekit", backendSQLite)
	require.ErrorContains(t, err, "sip needs redis and livekit")
	svcs, err := selectServices("livekit,sip", backendSQLite)
	require.NoError(t, err)
	require.Nil(t, envLookup(svcs, "sip"))
	svcs, err = selectServices("", backendSQLite)
	require.NoError(t, err)
	lk := envLookup(svcs, "livekit").(*livekitService)
	require.Same(t, envLookup(svcs, "redis"), lk.redis, "LiveKit uses the stack's Redis as its bus")
	require.Contains(t, lk.config(), "redis:\n")
	svcs, err = selectServices("redis,sip", backendSQLite)
	require.NoError(t, err)
	require.NotContains(t, envLookup(svcs, "livekit").(*livekitService).config(), "redis:")
}

// failingService fails once another service has finished starting, so the
// stack has something running to clean up.
type failingService struct{ after <-chan struct{} }

func (f *failingService) name() string              { return "broken" }
func (f *failingService) logPath(dir string) string { return filepath.Join(dir, "broken.log") }
func (f *failingService) endpoint() string          { return "" }
func (f *failingService) env() []envVar             { return nil }
func (f *failingService) stop()                     { panic("stop called on a service that failed to start") }
func (f *failingService) start(ctx context.Context, dir string) error {
	select {
	case <-f.after:
	case <-ctx.Done():
		return ctx.Err()
	}
	_ = os.WriteFile(f.logPath(dir), []byte("line one\nthe reason it broke\n"), 0o600)
	return errors.New("broken on purpose")
}

// notifyingService closes started when its wrapped service's start returns.
type notifyingService struct {
	service
	started chan struct{}
}

func (n *notifyingService) start(ctx context.Context, dir string) error {
	defer close(n.started)
	return n.service.start(ctx, dir)
}

func TestStackStopsStartedServersWhenAnotherFails(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed: run scripts/install-deps.sh")
	}
	redis := &redisService{}
	started := make(chan struct{})
	st, err := newStack(t.TempDir(), []service{
		&notifyingService{service: redis, started: started},
		&failingService{after: started},
	})
	require.NoError(t, err)

	err = st.start(context.Background(), "")
	require.ErrorContains(t, err, "broken on purpose")
	require.NotNil(t, redis.p, "redis should have started before the failure")
	require.True(t, processGone(redis.p.pid()), "redis pid %d left running after a failed start", redis.p.pid())
	require.DirExists(t, st.dir, "logs must survive a failed start")
	require.NoFileExists(t, filepath.Join(st.dir, "devstack.env"))
}
