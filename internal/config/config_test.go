package config_test

import (
	"errors"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/config"
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
	env := validEnv()
	env["APP_ENV"] = "production"
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
	require.Equal(t, "http://127.0.0.1:9999/v1", c.OpenAI.BaseURL)

	// Simulators are refused in production.
	env["APP_ENV"] = "production"
	_, err = config.Load(config.MapLookup(env))
	require.ErrorAs(t, err, &errs)
	require.ElementsMatch(t, []string{"DIALER", "OPENAI_BASE_URL"}, errs.Vars())
	require.NotContains(t, err.Error(), "hunter2")
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
