package config_test

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/monitor"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/stretchr/testify/require"
)

func validEnv() map[string]string {
	return map[string]string{
		"APP_ENV":               "staging",
		"REDIS_URL":             "redis://:redispass@127.0.0.1:6379/0",
		"MONGODB_URI":           "mongodb://user:mongopass@127.0.0.1:27017/",
		"MONGODB_DATABASE":      "docshield",
		"AWS_REGION":            "us-east-1",
		"AWS_ACCESS_KEY_ID":     "AKIAEXAMPLE",
		"AWS_SECRET_ACCESS_KEY": "s3cr3t-aws-key",
		"S3_BUCKET":             "recordings",
	}
}

// productionEnv is validEnv as production must look: every endpoint over
// TLS.
func productionEnv() map[string]string {
	env := validEnv()
	env["APP_ENV"] = "production"
	env["REDIS_URL"] = "rediss://:redispass@redis.example.com:6380/0"
	env["MONGODB_URI"] = "mongodb+srv://user:mongopass@cluster0.example.mongodb.net/"
	return env
}

func TestLoadValid(t *testing.T) {
	c, err := config.Load(config.MapLookup(validEnv()))
	require.NoError(t, err)
	require.Equal(t, config.Staging, c.Env)
	require.Equal(t, "REDIS_URL", c.Redis.Source)
	require.Equal(t, 25*time.Second, c.Worker.ShutdownTimeout)
	require.Equal(t, 10, c.Worker.Concurrency)
	require.Equal(t, "docshield", c.Mongo.Database)
}

func TestRedisURLPrecedence(t *testing.T) {
	env := validEnv()
	delete(env, "REDIS_URL")
	env["REDISCLOUD_URL"] = "redis://cloud:6379"
	c, err := config.Load(config.MapLookup(env))
	require.NoError(t, err)
	require.Equal(t, "REDISCLOUD_URL", c.Redis.Source)

	env["REDIS_URL"] = "redis://plain:6379"
	env["REDIS_TLS_URL"] = "rediss://tls:6380"
	env["REDIS_TLS_INSECURE_SKIP_VERIFY"] = "true"
	c, err = config.Load(config.MapLookup(env))
	require.NoError(t, err)
	require.Equal(t, "REDIS_TLS_URL", c.Redis.Source)
	require.Equal(t, "rediss://tls:6380", c.Redis.URL)
	require.True(t, c.Redis.InsecureSkipVerify)
}

func TestAllProblemsReportedWithoutSecrets(t *testing.T) {
	env := map[string]string{
		"APP_ENV":               "prod",
		"REDIS_URL":             "http://:hunter2-redis@host:6379",
		"MONGODB_URI":           "postgres://u:hunter2-mongo@h/",
		"AWS_SECRET_ACCESS_KEY": "hunter2-aws",
		"WORKER_CONCURRENCY":    "lots",
		"SHUTDOWN_TIMEOUT":      "45s",
	}
	_, err := config.Load(config.MapLookup(env))
	var errs config.Errors
	require.True(t, errors.As(err, &errs), "want config.Errors, got %v", err)
	require.ElementsMatch(t, []string{
		"APP_ENV", "AWS_ACCESS_KEY_ID", "AWS_REGION", "MONGODB_URI", "REDIS_URL",
		"S3_BUCKET", "SHUTDOWN_TIMEOUT", "WORKER_CONCURRENCY",
	}, errs.Vars())
	require.NotContains(t, err.Error(), "hunter2")
}

func TestS3EndpointRefusedInProduction(t *testing.T) {
	env := productionEnv()
	env["S3_ENDPOINT"] = "http://127.0.0.1:9000"
	_, err := config.Load(config.MapLookup(env))
	var errs config.Errors
	require.ErrorAs(t, err, &errs)
	require.Equal(t, []string{"S3_ENDPOINT"}, errs.Vars())
}

func TestSectionsLoadIndependently(t *testing.T) {
	// verify redis must work while MongoDB and S3 are unset.
	r, err := config.LoadRedis(config.MapLookup(map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0"}))
	require.NoError(t, err)
	require.Equal(t, "redis://127.0.0.1:1/0", r.URL)

	_, err = config.LoadMongo(config.MapLookup(map[string]string{"REDIS_URL": "redis://x"}))
	require.ErrorContains(t, err, "MONGODB_URI")
}

func TestShutdownTimeoutPlainSeconds(t *testing.T) {
	env := validEnv()
	env["SHUTDOWN_TIMEOUT"] = "20"
	c, err := config.Load(config.MapLookup(env))
	require.NoError(t, err)
	require.Equal(t, 20*time.Second, c.Worker.ShutdownTimeout)
}

func TestOptionalSections(t *testing.T) {
	env := validEnv()
	c, err := config.Load(config.MapLookup(env))
	require.NoError(t, err)
	require.False(t, c.LiveKit.Enabled())
	require.False(t, c.OpenAI.Enabled())
	require.False(t, c.LogTail.Enabled())
	require.Equal(t, []string{"LIVEKIT_URL", "OPENAI_API_KEY"}, c.MissingForCalls())
	require.Equal(t, []string{"OPENAI_API_KEY"}, c.MissingForAnalysis())
	require.Equal(t, 450, c.Health.MemWarnMB)
	require.Equal(t, 30*time.Second, c.Health.RedisInterval)

	env["LIVEKIT_URL"] = "ws://127.0.0.1:7880"
	env["OPENAI_API_KEY"] = "sk-hunter2"
	env["OPENAI_BASE_URL"] = "http://127.0.0.1:9999/v1/"
	_, err = config.Load(config.MapLookup(env))
	var errs config.Errors
	require.ErrorAs(t, err, &errs)
	require.ElementsMatch(t, []string{"LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LIVEKIT_SIP_TRUNK_ID"}, errs.Vars())

	env["LIVEKIT_API_KEY"], env["LIVEKIT_API_SECRET"], env["DIALER"] = "k", "s", "sim"
	c, err = config.Load(config.MapLookup(env))
	require.NoError(t, err)
	require.True(t, c.LiveKit.SimulateCallee)
	require.Empty(t, c.MissingForCalls())
	require.Empty(t, c.MissingForAnalysis())
	require.Equal(t, "http://127.0.0.1:9999/v1", c.OpenAI.BaseURL)

	// Simulators are refused in production.
	prod := productionEnv()
	for _, k := range []string{"OPENAI_API_KEY", "OPENAI_BASE_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "DIALER"} {
		prod[k] = env[k]
	}
	prod["LIVEKIT_URL"] = "wss://lk.example.com"
	_, err = config.Load(config.MapLookup(prod))
	require.ErrorAs(t, err, &errs)
	require.ElementsMatch(t, []string{"DIALER", "OPENAI_BASE_URL"}, errs.Vars())
	require.NotContains(t, err.Error(), "hunter2")
}

// Production refuses every plaintext endpoint, naming the variable and
// never echoing the URL (it may hold a password); development keeps
// accepting them for the local stack and its simulators on loopback.
func TestPlaintextEndpointsRefusedInProduction(t *testing.T) {
	plaintext := map[string]string{
		"REDIS_URL":            "redis://:hunter2@redis.example.com:6379/0",
		"MONGODB_URI":          "mongodb://user:hunter2@db.example.com:27017/",
		"LIVEKIT_URL":          "ws://lk.example.com:7880",
		"LIVEKIT_API_KEY":      "k",
		"LIVEKIT_API_SECRET":   "s",
		"DIALER":               "sip",
		"LIVEKIT_SIP_TRUNK_ID": "ST_1",
		"OPENAI_BASE_URL":      "http://openai.example.com/v1",
		"LOGTAIL_INGEST_URL":   "http://in.logs.example.com",
	}
	env := productionEnv()
	for k, v := range plaintext {
		env[k] = v
	}
	_, err := config.Load(config.MapLookup(env))
	var errs config.Errors
	require.ErrorAs(t, err, &errs)
	require.ElementsMatch(t, []string{"REDIS_URL", "MONGODB_URI", "LIVEKIT_URL", "OPENAI_BASE_URL", "LOGTAIL_INGEST_URL"}, errs.Vars())
	require.Contains(t, err.Error(), "REDIS_URL: must use rediss:// (TLS) when APP_ENV=production")
	require.NotContains(t, err.Error(), "hunter2")
	require.NotContains(t, err.Error(), "example.com")

	// The variable named is the one the URL came from.
	env = productionEnv()
	delete(env, "REDIS_URL")
	env["REDISCLOUD_URL"] = "redis://cloud.example.com:6379"
	_, err = config.Load(config.MapLookup(env))
	require.ErrorAs(t, err, &errs)
	require.Equal(t, []string{"REDISCLOUD_URL"}, errs.Vars())
	_, err = config.LoadRedis(config.MapLookup(env))
	require.ErrorContains(t, err, "REDISCLOUD_URL: must use rediss://")

	// LiveKit over https (its API) is TLS too; MongoDB only with TLS on.
	for uri, ok := range map[string]bool{
		"mongodb+srv://u:p@c.example.net/":                    true,
		"mongodb+srv://u:p@c.example.net/?tls=false":          false,
		"mongodb+srv://u:p@c.example.net/?ssl=false":          false,
		"mongodb://u:p@a.example.net,b.example.net/?tls=true": true,
		"mongodb://u:p@a.example.net/?ssl=true&w=majority":    true,
		"mongodb://u:p@a.example.net/?w=majority":             false,
	} {
		env = productionEnv()
		env["MONGODB_URI"] = uri
		env["LIVEKIT_URL"], env["LIVEKIT_API_KEY"], env["LIVEKIT_API_SECRET"], env["LIVEKIT_SIP_TRUNK_ID"] = "https://lk.example.com", "k", "s", "ST_1"
		_, err = config.Load(config.MapLookup(env))
		if ok {
			require.NoError(t, err, uri)
		} else {
			require.ErrorContains(t, err, "MONGODB_URI: must use TLS", uri)
		}
	}

	// Development: plaintext loopback endpoints are the local stack.
	dev := validEnv()
	dev["APP_ENV"] = "development"
	for k, v := range map[string]string{
		"REDIS_URL": "redis://127.0.0.1:6379/0", "LIVEKIT_URL": "ws://127.0.0.1:7880", "LIVEKIT_API_KEY": "k",
		"LIVEKIT_API_SECRET": "s", "DIALER": "sim", "OPENAI_BASE_URL": "http://127.0.0.1:9999/v1",
		"LOGTAIL_INGEST_URL": "http://127.0.0.1:9998",
	} {
		dev[k] = v
	}
	_, err = config.Load(config.MapLookup(dev))
	require.NoError(t, err)
}

// METRICS_ADDR is unauthenticated: a bare port binds loopback only, and a
// host written out is needed to listen anywhere else.
func TestMetricsAddrBarePortIsLoopback(t *testing.T) {
	for in, want := range map[string]string{
		":9090":          "127.0.0.1:9090",
		":0":             "127.0.0.1:0",
		"127.0.0.1:9090": "127.0.0.1:9090",
		"0.0.0.0:9090":   "0.0.0.0:9090",
		"[::1]:9090":     "[::1]:9090",
		"":               "",
	} {
		env := validEnv()
		env["METRICS_ADDR"] = in
		c, err := config.Load(config.MapLookup(env))
		require.NoError(t, err, in)
		require.Equal(t, want, c.Health.MetricsAddr, in)
	}
	for _, bad := range []string{"9090", "host:", ":http", ":70000"} {
		env := validEnv()
		env["METRICS_ADDR"] = bad
		_, err := config.Load(config.MapLookup(env))
		require.ErrorContains(t, err, "METRICS_ADDR", bad)
	}
}

func TestQueueArchiveLimits(t *testing.T) {
	c, err := config.Load(config.MapLookup(validEnv()))
	require.NoError(t, err)
	require.Equal(t, config.Queue{ArchiveMaxAge: 7 * 24 * time.Hour, ArchiveMaxBytes: 10 << 20, InlineArchiveMaxAge: time.Hour,
		JanitorInterval: time.Minute}, c.Queue)
	require.Equal(t, 60, c.Health.RedisMemWarnPct)
	require.Equal(t, 80, c.Health.RedisMemCritPct)

	env := validEnv()
	env["QUEUE_ARCHIVE_MAX_AGE"] = "48h"
	env["QUEUE_ARCHIVE_MAX_MB"] = "25"
	env["QUEUE_ARCHIVE_INLINE_MAX_AGE"] = "10m"
	env["QUEUE_JANITOR_INTERVAL"] = "5s"
	c, err = config.Load(config.MapLookup(env))
	require.NoError(t, err)
	require.Equal(t, config.Queue{ArchiveMaxAge: 48 * time.Hour, ArchiveMaxBytes: 25 << 20, InlineArchiveMaxAge: 10 * time.Minute,
		JanitorInterval: 5 * time.Second}, c.Queue)

	env["QUEUE_ARCHIVE_MAX_MB"] = "0"
	env["ALERT_REDIS_MEMORY_WARN_PCT"] = "90"
	_, err = config.Load(config.MapLookup(env))
	var errs config.Errors
	require.ErrorAs(t, err, &errs)
	require.ElementsMatch(t, []string{"QUEUE_ARCHIVE_MAX_MB", "ALERT_REDIS_MEMORY_CRIT_PCT"}, errs.Vars())
}

func TestThresholdOrder(t *testing.T) {
	env := validEnv()
	env["ALERT_MEMORY_WARN_MB"] = "480"
	env["ALERT_MEMORY_CRIT_MB"] = "470"
	_, err := config.Load(config.MapLookup(env))
	require.ErrorContains(t, err, "ALERT_MEMORY_CRIT_MB")
}

func TestRecordingSpoolMemory(t *testing.T) {
	c, err := config.Load(config.MapLookup(validEnv()))
	require.NoError(t, err)
	require.Equal(t, 32, c.Worker.RecordingSpoolMB, "the default")
	env := validEnv()
	env["RECORDING_SPOOL_MEMORY_MB"] = "64"
	c, err = config.Load(config.MapLookup(env))
	require.NoError(t, err)
	require.Equal(t, 64, c.Worker.RecordingSpoolMB)
	env["RECORDING_SPOOL_MEMORY_MB"] = "1024"
	_, err = config.Load(config.MapLookup(env))
	require.ErrorContains(t, err, "RECORDING_SPOOL_MEMORY_MB")
}

// The database is the one MONGODB_URI's path names, as every MongoDB
// driver reads it, so a backend sharing the URI writes where the worker
// reads; MONGODB_DATABASE only when the URI names none.
func TestDatabaseFromURI(t *testing.T) {
	for _, c := range []struct {
		uri, variable, db, source string
	}{
		{"mongodb://u:p@127.0.0.1:27017/", "", "docshield", config.FromDefault},
		{"mongodb://127.0.0.1:27017", "", "docshield", config.FromDefault},
		{"mongodb://127.0.0.1:27017/?w=majority", "", "docshield", config.FromDefault},
		{"mongodb://127.0.0.1:27017/", "calls", "calls", config.FromVariable},
		{"mongodb://127.0.0.1:27017/campaigns", "", "campaigns", config.FromURI},
		{"mongodb://127.0.0.1:27017/campaigns?w=majority", "campaigns", "campaigns", config.FromURI},
		{"mongodb+srv://u:p@c0.example.net/prod_db?retryWrites=true&authSource=admin", "", "prod_db", config.FromURI},
		{"mongodb://u:p@a.example.net:27017,b.example.net:27017/multi?replicaSet=rs0", "", "multi", config.FromURI},
		// A password may hold "?" (the user info ends at "@"), and an
		// encoded "/" or "@".
		{"mongodb://u:pa?ss%2F%40@127.0.0.1/after_pw", "", "after_pw", config.FromURI},
		{"mongodb://127.0.0.1/my%2Ddb", "", "my-db", config.FromURI},
	} {
		env := validEnv()
		env["MONGODB_URI"] = c.uri
		delete(env, "MONGODB_DATABASE")
		if c.variable != "" {
			env["MONGODB_DATABASE"] = c.variable
		}
		got, err := config.Load(config.MapLookup(env))
		require.NoError(t, err, c.uri)
		require.Equal(t, c.db, got.Mongo.Database, c.uri)
		require.Equal(t, c.source, got.Mongo.DatabaseSource, c.uri)
	}

	// Both set and different: refused, naming both variables and both
	// databases, never the password.
	env := validEnv()
	env["MONGODB_URI"] = "mongodb://u:hunter2@127.0.0.1:27017/backend_db"
	env["MONGODB_DATABASE"] = "docshield"
	_, err := config.LoadMongo(config.MapLookup(env))
	var errs config.Errors
	require.ErrorAs(t, err, &errs)
	require.Equal(t, []string{"MONGODB_DATABASE"}, errs.Vars())
	for _, s := range []string{"MONGODB_URI", `"backend_db"`, `"docshield"`} {
		require.Contains(t, err.Error(), s)
	}
	require.NotContains(t, err.Error(), "hunter2")

	// A name MongoDB refuses, in either place.
	for _, e := range []map[string]string{
		{"MONGODB_URI": "mongodb://127.0.0.1/a.b"},
		{"MONGODB_URI": "mongodb://127.0.0.1/", "MONGODB_DATABASE": "a b"},
		{"MONGODB_URI": "mongodb://127.0.0.1/%zz"},
	} {
		_, err := config.LoadMongo(config.MapLookup(e))
		require.Error(t, err, e)
	}
}

func TestRedisCACert(t *testing.T) {
	ca := testenv.NewCA(t)
	env := validEnv()
	env["REDIS_URL"] = "rediss://:redispass@127.0.0.1:6380/0"
	env["REDIS_CA_CERT"] = string(ca.CertPEM)
	c, err := config.Load(config.MapLookup(env))
	require.NoError(t, err)
	require.NotNil(t, c.Redis.RootCAs())

	// Pasted on one line with literal \n, as some consoles do.
	env["REDIS_CA_CERT"] = strings.ReplaceAll(string(ca.CertPEM), "\n", `\n`)
	c, err = config.Load(config.MapLookup(env))
	require.NoError(t, err)
	require.NotNil(t, c.Redis.RootCAs())

	c, err = config.Load(config.MapLookup(validEnv()))
	require.NoError(t, err)
	require.Nil(t, c.Redis.RootCAs(), "unset: the system's store")

	for _, bad := range []map[string]string{
		{"REDIS_CA_CERT": "not a certificate hunter2"},
		{"REDIS_CA_CERT": "-----BEGIN EC PRIVATE KEY-----\nhunter2\n-----END EC PRIVATE KEY-----"},
		{"REDIS_CA_CERT": string(ca.CertPEM), "REDIS_URL": "redis://127.0.0.1:6379/0"},
		{"REDIS_CA_CERT": string(ca.CertPEM), "REDIS_TLS_INSECURE_SKIP_VERIFY": "true"},
	} {
		env := validEnv()
		env["REDIS_URL"] = "rediss://127.0.0.1:6380/0"
		maps.Copy(env, bad)
		_, err := config.LoadRedis(config.MapLookup(env))
		require.Error(t, err, bad)
		require.Regexp(t, `REDIS_CA_CERT|REDIS_TLS_INSECURE_SKIP_VERIFY`, err.Error())
		require.NotContains(t, err.Error(), "hunter2")
		require.NotContains(t, err.Error(), "BEGIN EC")
	}
}

// Unset memory levels follow the process's real memory limit at the
// ratios of 450/490 MB on 512 MB; set ones are kept.
func TestMemoryLevelsFollowTheLimit(t *testing.T) {
	c, err := config.Load(config.MapLookup(validEnv()))
	require.NoError(t, err)
	require.Equal(t, []int{450, 490}, []int{c.Health.MemWarnMB, c.Health.MemCritMB}, "before the limit is known")

	h := c.Health.WithMemoryLimit(512<<20, "cgroup v2 memory.max")
	require.Equal(t, []int{450, 490}, []int{h.MemWarnMB, h.MemCritMB}, "standard-1x")
	require.Contains(t, h.MemorySource, "512 MB memory limit (cgroup v2 memory.max)")

	h = c.Health.WithMemoryLimit(1024<<20, "cgroup v1 memory.limit_in_bytes")
	require.Equal(t, []int{900, 980}, []int{h.MemWarnMB, h.MemCritMB}, "standard-2x")

	h = c.Health.WithMemoryLimit(0, "")
	require.Equal(t, []int{450, 490}, []int{h.MemWarnMB, h.MemCritMB}, "no limit found")
	require.Contains(t, h.MemorySource, "no memory limit found")

	env := validEnv()
	env["ALERT_MEMORY_WARN_MB"], env["ALERT_MEMORY_CRIT_MB"] = "300", "400"
	c, err = config.Load(config.MapLookup(env))
	require.NoError(t, err)
	h = c.Health.WithMemoryLimit(1024<<20, "cgroup")
	require.Equal(t, []int{300, 400}, []int{h.MemWarnMB, h.MemCritMB}, "set levels win")
	require.Equal(t, "ALERT_MEMORY_WARN_MB and ALERT_MEMORY_CRIT_MB", h.MemorySource)

	// One set: the other is derived, and never crosses it.
	delete(env, "ALERT_MEMORY_WARN_MB")
	env["ALERT_MEMORY_CRIT_MB"] = "700"
	c, err = config.Load(config.MapLookup(env))
	require.NoError(t, err)
	h = c.Health.WithMemoryLimit(2048<<20, "cgroup")
	require.Equal(t, []int{700, 700}, []int{h.MemWarnMB, h.MemCritMB})
	require.Contains(t, h.MemorySource, "ALERT_MEMORY_CRIT_MB; warning from")
}

func TestLogFormat(t *testing.T) {
	for _, c := range []struct {
		env, format, want string
		ok                bool
	}{
		{"development", "", config.LogAuto, true},
		{"development", "console", config.LogConsole, true},
		{"development", "JSON", config.LogJSON, true},
		{"staging", "", config.LogAuto, true},
		{"staging", "console", "", false},
		{"production", "console", "", false},
		{"development", "pretty", "", false},
	} {
		env := validEnv()
		env["APP_ENV"] = c.env
		if c.env == "production" {
			env = productionEnv()
		}
		env["LOG_FORMAT"] = c.format
		got, err := config.Load(config.MapLookup(env))
		if !c.ok {
			require.ErrorContains(t, err, "LOG_FORMAT", c)
			continue
		}
		require.NoError(t, err, c)
		require.Equal(t, c.want, got.LogFormat, c)
	}
}

// The MongoDB pool follows the calls a worker takes at once, unless set;
// what the calls need is kept for `verify mongo` to compare.
func TestMongoPoolFollowsConcurrency(t *testing.T) {
	env := validEnv()
	c, err := config.Load(config.MapLookup(env))
	require.NoError(t, err)
	require.Equal(t, config.MongoPoolFor(10), c.Mongo.MaxPoolSize)
	require.Equal(t, uint64(20), c.Mongo.NeededPool, "10 calls and the spare")

	env["WORKER_CONCURRENCY"] = "40"
	c, err = config.Load(config.MapLookup(env))
	require.NoError(t, err)
	require.Equal(t, uint64(50), c.Mongo.MaxPoolSize)
	m, err := config.LoadMongo(config.MapLookup(env))
	require.NoError(t, err)
	require.Equal(t, c.Mongo, m, "verify mongo sees the same sizes")

	env["MONGODB_MAX_POOL_SIZE"] = "20"
	c, err = config.Load(config.MapLookup(env))
	require.NoError(t, err)
	require.Equal(t, uint64(20), c.Mongo.MaxPoolSize)
	require.Equal(t, uint64(50), c.Mongo.NeededPool)
}

// The admission limits default to monitor's constants, are checked, and
// ADMISSION_CPU_WAIT_RATIO=0 turns the run-queue reason off.
func TestAdmissionLimits(t *testing.T) {
	t.Parallel()
	env := map[string]string{"MONGODB_URI": "mongodb://127.0.0.1:27017/"}
	c, err := config.LoadFleet(config.MapLookup(env))
	require.NoError(t, err)
	require.Equal(t, monitor.DefaultLateFramesPct, c.Fleet.AdmissionLateFramesPct)
	require.Equal(t, monitor.DefaultDroppedInputPct, c.Fleet.AdmissionDroppedInputPct)
	require.Equal(t, monitor.DefaultWaitRatio, c.Fleet.AdmissionWaitRatio)

	env["ADMISSION_CPU_WAIT_RATIO"] = "0"
	env["ADMISSION_LATE_FRAMES_PCT"] = "5"
	c, err = config.LoadFleet(config.MapLookup(env))
	require.NoError(t, err)
	require.Zero(t, c.Fleet.AdmissionWaitRatio)
	require.Equal(t, 5.0, c.Fleet.AdmissionLateFramesPct)

	env["ADMISSION_DROPPED_INPUT_PCT"] = "0"
	env["ADMISSION_CPU_WAIT_RATIO"] = "-1"
	_, err = config.LoadFleet(config.MapLookup(env))
	require.ErrorContains(t, err, "ADMISSION_DROPPED_INPUT_PCT")
	require.ErrorContains(t, err, "ADMISSION_CPU_WAIT_RATIO")
}
