// Package config reads every setting of the worker from the environment,
// once, into one typed struct. Problems are collected, not returned one at a
// time, so an operator fixes a misconfigured dyno in one pass; messages name
// the variable and never echo a value that could be a secret.
package config

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/docshield/voice-worker/internal/phone"
)

// Env is the deployment environment. Production refuses simulators and
// local-only settings.
type Env string

const (
	Development Env = "development"
	Staging     Env = "staging"
	Production  Env = "production"
)

// Config is the whole configuration. Sections are read independently so a
// `verify` target can check one dependency while others are misconfigured.
type Config struct {
	Env      Env
	LogLevel string
	Redis    Redis
	Mongo    Mongo
	S3       S3
	Worker   Worker
	LiveKit  LiveKit
	OpenAI   OpenAI
	LogTail  LogTail
	Health   Health
}

// LiveKit settings. Telephony is enabled when URL is set; the phone network
// simulator only by DIALER=sim (SimulateCallee), which production refuses.
type LiveKit struct {
	URL            string
	APIKey         string
	APISecret      string
	SIPTrunkID     string
	CallerID       string
	SimulateCallee bool
}

// Enabled reports whether telephony is configured.
func (l LiveKit) Enabled() bool { return l.URL != "" }

// OpenAI settings. BaseURL may point at the local simulator outside
// production only.
type OpenAI struct {
	APIKey        string
	BaseURL       string
	RealtimeModel string
	Voice         string
	AnalysisModel string
}

// Enabled reports whether the OpenAI settings are present.
func (o OpenAI) Enabled() bool { return o.APIKey != "" }

// LogTail settings; shipping is off without a token.
type LogTail struct {
	SourceToken string
	IngestURL   string
	BufferBytes int
}

// Enabled reports whether logs are shipped.
func (l LogTail) Enabled() bool { return l.SourceToken != "" }

// Health settings: check intervals and alert thresholds (the operations
// doc's table) and the optional Prometheus listener.
type Health struct {
	WorkerInterval, RedisInterval, MongoInterval, S3Interval, EvalInterval time.Duration
	CPUWarnPct, CPUCritPct                                                 int
	MemWarnMB, MemCritMB                                                   int
	QueueWarn, QueueCrit                                                   int
	ErrorRateWarnPct, ErrorRateCritPct                                     int
	MetricsAddr                                                            string
}

// Redis settings. URL may come from REDIS_TLS_URL, REDIS_URL or
// REDISCLOUD_URL (Heroku add-ons); Source says which.
type Redis struct {
	URL    string
	Source string
	// InsecureSkipVerify accepts the self-signed certificate Heroku Redis
	// presents on rediss://. Only honoured when asked for explicitly.
	InsecureSkipVerify bool
}

// Mongo settings.
type Mongo struct {
	URI      string
	Database string
	// MaxPoolSize is MONGODB_MAX_POOL_SIZE; unset, it is NeededPool.
	MaxPoolSize uint64
	// NeededPool is MongoPoolFor(WORKER_CONCURRENCY): the connections this
	// worker's calls can use at once. `verify mongo` warns when
	// MaxPoolSize is below it.
	NeededPool uint64
}

// MongoPoolFor is the MongoDB connection pool a worker taking concurrency
// calls at once needs: one connection per live call (a call's writes go
// one at a time through its keeper; its recording's segment notes are a
// few a minute) and mongoPoolSpare for the process's own duties (claims,
// the reaper, recording sweeps, dispatch, health checks). Not more: every
// dyno's pool counts against the cluster's connection limit.
func MongoPoolFor(concurrency int) uint64 { return uint64(concurrency) + mongoPoolSpare }

const mongoPoolSpare = 10

// S3 settings. Endpoint is for MinIO/local stacks only.
type S3 struct {
	Region          string
	AccessKeyID     string
	SecretAccessKey string
	Bucket          string
	Endpoint        string
}

// Worker settings for the asynq server.
type Worker struct {
	Concurrency     int
	ShutdownTimeout time.Duration
	// Name identifies this process as the owner of claimed attempts;
	// defaults to Heroku's DYNO plus the host name.
	Name string
	// DispatchInterval is the length of a campaign dispatch round.
	DispatchInterval time.Duration
	// CallLease is how long a live call's claim lasts without renewal: a
	// worker that dies mid-call has its call settled as interrupted this
	// long after its last renewal.
	CallLease time.Duration
	// RecordingSegment is how much audio each crash-safe recording segment
	// holds, and so about the most of a call a crash loses.
	RecordingSegment time.Duration
	// RecordingSpoolMB caps the recording audio the process holds in
	// memory while storage has not taken it (during an outage, past the
	// call's end); past it, audio is spilled to disk, encrypted.
	RecordingSpoolMB int
}

// FieldError is one problem with one variable.
type FieldError struct {
	Var string
	Msg string
}

func (e FieldError) Error() string { return e.Var + ": " + e.Msg }

// Errors is every problem found, sorted by variable name.
type Errors []FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = "  " + e.Error()
	}
	return fmt.Sprintf("invalid configuration (%d problems):\n%s", len(es), strings.Join(lines, "\n"))
}

// Vars returns the names of the variables with problems.
func (es Errors) Vars() []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Var
	}
	return out
}

// LookupFunc reads one environment variable; os.LookupEnv in production,
// a map in tests.
type LookupFunc func(string) (string, bool)

// MapLookup adapts a map for tests and tools.
func MapLookup(m map[string]string) LookupFunc {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// reader collects problems while reading variables.
type reader struct {
	lookup LookupFunc
	errs   Errors
}

func (r *reader) fail(name, format string, args ...any) {
	r.errs = append(r.errs, FieldError{Var: name, Msg: fmt.Sprintf(format, args...)})
}

func (r *reader) str(name, def string) string {
	v, ok := r.lookup(name)
	v = strings.TrimSpace(v)
	if !ok || v == "" {
		return def
	}
	return v
}

func (r *reader) required(name string) string {
	v := r.str(name, "")
	if v == "" {
		r.fail(name, "is required")
	}
	return v
}

func (r *reader) integer(name string, def, min, max int) int {
	s := r.str(name, "")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		r.fail(name, "must be a whole number, got %q", s)
		return def
	}
	if n < min || n > max {
		r.fail(name, "must be between %d and %d, got %d", min, max, n)
		return def
	}
	return n
}

func (r *reader) duration(name string, def, min, max time.Duration) time.Duration {
	s := r.str(name, "")
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		// Heroku users often write plain seconds.
		if n, nerr := strconv.Atoi(s); nerr == nil {
			d, err = time.Duration(n)*time.Second, nil
		}
	}
	if err != nil {
		r.fail(name, "must be a duration like 25s or 1m, got %q", s)
		return def
	}
	if d < min || d > max {
		r.fail(name, "must be between %s and %s, got %s", min, max, d)
		return def
	}
	return d
}

func (r *reader) boolean(name string, def bool) bool {
	s := r.str(name, "")
	if s == "" {
		return def
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		r.fail(name, "must be true or false, got %q", s)
		return def
	}
	return b
}

func (r *reader) err() error {
	if len(r.errs) == 0 {
		return nil
	}
	sort.SliceStable(r.errs, func(i, j int) bool { return r.errs[i].Var < r.errs[j].Var })
	return r.errs
}

// Load reads and validates the whole configuration.
func Load(lookup LookupFunc) (Config, error) {
	r := &reader{lookup: lookup}
	c := Config{
		Env:      r.env(),
		LogLevel: r.logLevel(),
		Redis:    r.redis(),
		Worker:   r.worker(),
	}
	c.Mongo = r.mongo(c.Worker.Concurrency)
	c.S3 = r.s3(c.Env)
	c.LiveKit = r.livekit(c.Env)
	c.OpenAI = r.openai(c.Env)
	c.LogTail = r.logtail()
	c.Health = r.health()
	return c, r.err()
}

// LoadLiveKit reads only the LiveKit settings, for `verify livekit`.
func LoadLiveKit(lookup LookupFunc) (LiveKit, error) {
	r := &reader{lookup: lookup}
	c := r.livekit(r.env())
	if c.URL == "" {
		r.fail("LIVEKIT_URL", "is required")
	}
	return c, r.err()
}

// LoadOpenAI reads only the OpenAI settings, for `verify openai`.
func LoadOpenAI(lookup LookupFunc) (OpenAI, error) {
	r := &reader{lookup: lookup}
	c := r.openai(r.env())
	if c.APIKey == "" {
		r.fail("OPENAI_API_KEY", "is required")
	}
	return c, r.err()
}

// LoadLogTail reads only the LogTail settings, for `verify logtail`.
func LoadLogTail(lookup LookupFunc) (LogTail, error) {
	r := &reader{lookup: lookup}
	c := r.logtail()
	if c.SourceToken == "" {
		r.fail("LOGTAIL_SOURCE_TOKEN", "is required")
	}
	return c, r.err()
}

// LoadRedis reads only what talking to Redis needs (plus APP_ENV).
func LoadRedis(lookup LookupFunc) (Redis, error) {
	r := &reader{lookup: lookup}
	c := r.redis()
	return c, r.err()
}

// LoadMongo reads only what talking to MongoDB needs.
func LoadMongo(lookup LookupFunc) (Mongo, error) {
	r := &reader{lookup: lookup}
	c := r.mongo(r.concurrency())
	return c, r.err()
}

// LoadS3 reads only what talking to S3 needs.
func LoadS3(lookup LookupFunc) (S3, error) {
	r := &reader{lookup: lookup}
	c := r.s3(r.env())
	return c, r.err()
}

// LoadBase reads the settings every command needs: environment and log level.
func LoadBase(lookup LookupFunc) (Env, string, error) {
	r := &reader{lookup: lookup}
	e, l := r.env(), r.logLevel()
	return e, l, r.err()
}

func (r *reader) env() Env {
	switch e := Env(r.str("APP_ENV", string(Development))); e {
	case Development, Staging, Production:
		return e
	default:
		r.fail("APP_ENV", "must be development, staging or production, got %q", string(e))
		return Development
	}
}

func (r *reader) logLevel() string {
	l := strings.ToLower(r.str("LOG_LEVEL", "info"))
	switch l {
	case "debug", "info", "warn", "error":
		return l
	}
	r.fail("LOG_LEVEL", "must be debug, info, warn or error, got %q", l)
	return "info"
}

// redisURLVars is the order in which the Redis URL is looked for: the TLS
// URL first because Heroku sets it next to a plain URL for the same server.
var redisURLVars = []string{"REDIS_TLS_URL", "REDIS_URL", "REDISCLOUD_URL"}

func (r *reader) redis() Redis {
	var c Redis
	for _, name := range redisURLVars {
		if v := r.str(name, ""); v != "" {
			c.URL, c.Source = v, name
			break
		}
	}
	c.InsecureSkipVerify = r.boolean("REDIS_TLS_INSECURE_SKIP_VERIFY", false)
	if c.URL == "" {
		r.fail("REDIS_URL", "is required (or REDIS_TLS_URL / REDISCLOUD_URL)")
		return c
	}
	u, err := url.Parse(c.URL)
	switch {
	case err != nil:
		// url.Parse's error repeats the URL, which holds the password.
		r.fail(c.Source, "is not a valid URL")
	case u.Scheme != "redis" && u.Scheme != "rediss":
		r.fail(c.Source, "must start with redis:// or rediss://, got scheme %q", u.Scheme)
	case u.Host == "":
		r.fail(c.Source, "has no host")
	}
	return c
}

func (r *reader) mongo(concurrency int) Mongo {
	need := MongoPoolFor(concurrency)
	c := Mongo{
		URI:         r.required("MONGODB_URI"),
		Database:    r.str("MONGODB_DATABASE", "docshield"),
		MaxPoolSize: uint64(r.integer("MONGODB_MAX_POOL_SIZE", int(need), 1, 500)),
		NeededPool:  need,
	}
	if c.URI != "" && !strings.HasPrefix(c.URI, "mongodb://") && !strings.HasPrefix(c.URI, "mongodb+srv://") {
		r.fail("MONGODB_URI", "must start with mongodb:// or mongodb+srv://")
	}
	if strings.ContainsAny(c.Database, `/\. "$`) || len(c.Database) > 63 {
		r.fail("MONGODB_DATABASE", "must be a MongoDB database name (no /\\. \"$, at most 63 characters), got %q", c.Database)
	}
	return c
}

func (r *reader) s3(env Env) S3 {
	c := S3{
		Region:          r.required("AWS_REGION"),
		AccessKeyID:     r.str("AWS_ACCESS_KEY_ID", ""),
		SecretAccessKey: r.str("AWS_SECRET_ACCESS_KEY", ""),
		Bucket:          r.required("S3_BUCKET"),
		Endpoint:        r.str("S3_ENDPOINT", ""),
	}
	// Keys come in pairs; with neither, the SDK's default chain (an IAM
	// role) is used.
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		if c.AccessKeyID == "" {
			r.fail("AWS_ACCESS_KEY_ID", "is required when AWS_SECRET_ACCESS_KEY is set")
		} else {
			r.fail("AWS_SECRET_ACCESS_KEY", "is required when AWS_ACCESS_KEY_ID is set")
		}
	}
	if c.Endpoint != "" {
		if env == Production {
			r.fail("S3_ENDPOINT", "is for local stacks (MinIO) only and is refused when APP_ENV=production")
		} else if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			r.fail("S3_ENDPOINT", "must be an http(s) URL like http://127.0.0.1:9000")
		}
	}
	return c
}

// isLoopbackURL reports whether raw points at this machine: where the local
// simulators live, and where production must never point.
func isLoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func (r *reader) livekit(env Env) LiveKit {
	c := LiveKit{
		URL:        r.str("LIVEKIT_URL", ""),
		APIKey:     r.str("LIVEKIT_API_KEY", ""),
		APISecret:  r.str("LIVEKIT_API_SECRET", ""),
		SIPTrunkID: r.str("LIVEKIT_SIP_TRUNK_ID", ""),
		CallerID:   r.str("CALLER_ID", ""),
	}
	switch d := r.str("DIALER", "sip"); d {
	case "sip":
	case "sim":
		c.SimulateCallee = true
	default:
		r.fail("DIALER", "must be sip (LiveKit SIP) or sim (the callee simulator), got %q", d)
	}
	if c.URL == "" {
		return c
	}
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "ws" && u.Scheme != "wss" && u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r.fail("LIVEKIT_URL", "must be a ws(s):// or http(s):// URL")
	}
	if c.APIKey == "" {
		r.fail("LIVEKIT_API_KEY", "is required when LIVEKIT_URL is set")
	}
	if c.APISecret == "" {
		r.fail("LIVEKIT_API_SECRET", "is required when LIVEKIT_URL is set")
	}
	if c.SimulateCallee && env == Production {
		r.fail("DIALER", "sim simulates the phone network and is refused when APP_ENV=production")
	}
	if !c.SimulateCallee && c.SIPTrunkID == "" {
		r.fail("LIVEKIT_SIP_TRUNK_ID", "is required to place real calls (or DIALER=sim outside production)")
	}
	if c.CallerID != "" && !phone.Valid(c.CallerID) {
		r.fail("CALLER_ID", "must be an E.164 number like +15551234567")
	}
	return c
}

func (r *reader) openai(env Env) OpenAI {
	c := OpenAI{
		APIKey:        r.str("OPENAI_API_KEY", ""),
		BaseURL:       strings.TrimRight(r.str("OPENAI_BASE_URL", "https://api.openai.com/v1"), "/"),
		RealtimeModel: r.str("OPENAI_REALTIME_MODEL", "gpt-realtime"),
		Voice:         r.str("OPENAI_VOICE", "marin"),
		AnalysisModel: r.str("OPENAI_ANALYSIS_MODEL", "gpt-4o-mini"),
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r.fail("OPENAI_BASE_URL", "must be an http(s) URL like https://api.openai.com/v1")
	} else if env == Production && isLoopbackURL(c.BaseURL) {
		r.fail("OPENAI_BASE_URL", "points at this machine (a simulator) and is refused when APP_ENV=production")
	}
	return c
}

func (r *reader) logtail() LogTail {
	c := LogTail{
		SourceToken: r.str("LOGTAIL_SOURCE_TOKEN", ""),
		IngestURL:   r.str("LOGTAIL_INGEST_URL", "https://in.logs.betterstack.com"),
		BufferBytes: r.integer("LOGTAIL_BUFFER_BYTES", 8<<20, 64<<10, 256<<20),
	}
	if u, err := url.Parse(c.IngestURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r.fail("LOGTAIL_INGEST_URL", "must be an http(s) URL")
	}
	return c
}

func (r *reader) health() Health {
	iv := func(name string, def time.Duration) time.Duration {
		return r.duration(name, def, time.Second, time.Hour)
	}
	c := Health{
		WorkerInterval:   iv("HEALTH_WORKER_INTERVAL", 30*time.Second),
		RedisInterval:    iv("HEALTH_REDIS_INTERVAL", 30*time.Second),
		MongoInterval:    iv("HEALTH_MONGO_INTERVAL", 60*time.Second),
		S3Interval:       iv("HEALTH_S3_INTERVAL", 120*time.Second),
		EvalInterval:     iv("ALERT_EVAL_INTERVAL", 30*time.Second),
		CPUWarnPct:       r.integer("ALERT_CPU_WARN_PCT", 70, 1, 100),
		CPUCritPct:       r.integer("ALERT_CPU_CRIT_PCT", 85, 1, 100),
		MemWarnMB:        r.integer("ALERT_MEMORY_WARN_MB", 450, 16, 1<<20),
		MemCritMB:        r.integer("ALERT_MEMORY_CRIT_MB", 490, 16, 1<<20),
		QueueWarn:        r.integer("ALERT_QUEUE_WARN", 100, 1, 1<<30),
		QueueCrit:        r.integer("ALERT_QUEUE_CRIT", 200, 1, 1<<30),
		ErrorRateWarnPct: r.integer("ALERT_ERROR_RATE_WARN_PCT", 5, 1, 100),
		ErrorRateCritPct: r.integer("ALERT_ERROR_RATE_CRIT_PCT", 10, 1, 100),
		MetricsAddr:      r.str("METRICS_ADDR", ""),
	}
	pairs := []struct {
		warn, crit int
		name       string
	}{
		{c.CPUWarnPct, c.CPUCritPct, "ALERT_CPU_CRIT_PCT"},
		{c.MemWarnMB, c.MemCritMB, "ALERT_MEMORY_CRIT_MB"},
		{c.QueueWarn, c.QueueCrit, "ALERT_QUEUE_CRIT"},
		{c.ErrorRateWarnPct, c.ErrorRateCritPct, "ALERT_ERROR_RATE_CRIT_PCT"},
	}
	for _, p := range pairs {
		if p.crit < p.warn {
			r.fail(p.name, "must not be below its warning level (%d < %d)", p.crit, p.warn)
		}
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			r.fail("METRICS_ADDR", "must be host:port like 127.0.0.1:9090 or :9090")
		}
	}
	return c
}

func (r *reader) concurrency() int { return r.integer("WORKER_CONCURRENCY", 10, 1, 200) }

func (r *reader) worker() Worker {
	c := Worker{
		Concurrency:      r.concurrency(),
		ShutdownTimeout:  r.duration("SHUTDOWN_TIMEOUT", 25*time.Second, time.Second, 29*time.Second),
		Name:             r.str("WORKER_NAME", ""),
		DispatchInterval: r.duration("CAMPAIGN_DISPATCH_INTERVAL", 30*time.Second, time.Second, time.Hour),
		CallLease:        r.duration("CALL_LEASE", 2*time.Minute, 6*time.Second, 30*time.Minute),
		RecordingSegment: r.duration("RECORDING_SEGMENT_DURATION", 30*time.Second, time.Second, 50*time.Second),
		RecordingSpoolMB: r.integer("RECORDING_SPOOL_MEMORY_MB", 32, 1, 256),
	}
	if c.Name == "" {
		c.Name = r.str("DYNO", "")
	}
	return c
}
