// Package config reads every setting of the worker from the environment,
// once, into one typed struct. Problems are collected, not returned one at a
// time, so an operator fixes a misconfigured dyno in one pass; messages name
// the variable and never echo a value that could be a secret.
package config

import (
	"crypto/x509"
	"errors"
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
	// LogFormat is how stdout's lines are written: LogJSON, LogConsole, or
	// LogAuto (console when APP_ENV=development and stdout is a terminal,
	// JSON otherwise). Lines shipped to LogTail are always JSON.
	LogFormat string
	Redis     Redis
	Mongo     Mongo
	S3        S3
	Worker    Worker
	LiveKit   LiveKit
	OpenAI    OpenAI
	LogTail   LogTail
	Health    Health
	Queue     Queue
	Fleet     Fleet
}

// Queue settings: how long and how much of the archive the janitor keeps.
// asynq's own limits (90 days, 10,000 tasks per queue) are constants that
// would let a few large mistakes fill a 100 MB Redis.
type Queue struct {
	// ArchiveMaxAge is how long an archived task is kept.
	ArchiveMaxAge time.Duration
	// ArchiveMaxBytes caps the payload bytes of all archived tasks
	// together; past it, the oldest go first.
	ArchiveMaxBytes int64
	// InlineArchiveMaxAge is how long an archived inline call is kept: its
	// payload holds a phone number and template variables.
	InlineArchiveMaxAge time.Duration
	// JanitorInterval is how often the archive is trimmed.
	JanitorInterval time.Duration
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

// MissingForCalls names the unset variables without which this worker
// cannot place calls; empty when it can.
func (c Config) MissingForCalls() []string {
	var out []string
	if !c.LiveKit.Enabled() {
		out = append(out, "LIVEKIT_URL")
	}
	return append(out, c.MissingForAnalysis()...)
}

// MissingForAnalysis names the unset variables without which this worker
// cannot analyse calls; empty when it can.
func (c Config) MissingForAnalysis() []string {
	if !c.OpenAI.Enabled() {
		return []string{"OPENAI_API_KEY"}
	}
	return nil
}

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
	// MemWarnMB and MemCritMB are the RSS alert levels. Each one not set
	// (ALERT_MEMORY_WARN_MB, _CRIT_MB) is 450 or 490 until WithMemoryLimit
	// derives it from the process's real memory limit; MemorySource says
	// which applied.
	MemWarnMB, MemCritMB               int
	MemorySource                       string
	memWarnSet, memCritSet             bool
	QueueWarn, QueueCrit               int
	ErrorRateWarnPct, ErrorRateCritPct int
	// RedisMemWarnPct and RedisMemCritPct grade Redis's used_memory as a
	// percent of its maxmemory: with noeviction a full Redis refuses every
	// enqueue, so the alert must come well before.
	RedisMemWarnPct, RedisMemCritPct int
	// HerokuMetricsURL (HEROKU_METRICS_URL) is where Heroku takes the Go
	// runtime's metrics for its dashboard; Heroku sets it on dynos of an
	// app with language metrics on. Empty: not reported.
	HerokuMetricsURL string
	// MetricsAddr is host:port. A bare ":port" was turned into
	// 127.0.0.1:port when read: the endpoint has no authentication, so it
	// binds beyond loopback only when a host is named.
	MetricsAddr string
}

// Redis settings. URL may come from REDIS_TLS_URL, REDIS_URL or
// REDISCLOUD_URL (Heroku add-ons); Source says which.
type Redis struct {
	URL    string
	Source string
	// InsecureSkipVerify accepts the self-signed certificate Heroku Redis
	// presents on rediss://. Only honoured when asked for explicitly.
	InsecureSkipVerify bool
	// CACertPEM (REDIS_CA_CERT) holds the certificates, PEM, that rediss://
	// is verified against in place of the system's: for providers whose CA
	// is not publicly trusted (Redis Cloud publishes its own bundle). It was
	// checked to hold at least one certificate when read.
	CACertPEM string
}

// Mongo settings.
type Mongo struct {
	URI string
	// Database is the database the worker uses: the one MONGODB_URI's path
	// names, as every MongoDB driver reads it (so a backend sharing the URI
	// writes where the worker reads), else MONGODB_DATABASE, else
	// DefaultDatabase. DatabaseSource says which.
	Database       string
	DatabaseSource string
	// MaxPoolSize is MONGODB_MAX_POOL_SIZE; unset, it is NeededPool.
	MaxPoolSize uint64
	// NeededPool is MongoPoolFor(WORKER_CONCURRENCY): the connections this
	// worker's calls can use at once. `verify mongo` warns when
	// MaxPoolSize is below it.
	NeededPool uint64
}

// DefaultDatabase is the database used when neither MONGODB_URI's path nor
// MONGODB_DATABASE names one. (The Node.js driver would use "test" then:
// a backend must name the database in the URI it shares.)
const DefaultDatabase = "docshield"

// Where Mongo.Database came from.
const (
	FromURI      = "MONGODB_URI"
	FromVariable = "MONGODB_DATABASE"
	FromDefault  = "default"
)

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

// OneLine puts err on one line for a table cell: the problems of an Errors
// separated by "; " (folding its lines would run them together), any other
// error as it is.
func OneLine(err error) string {
	var es Errors
	if !errors.As(err, &es) {
		return err.Error()
	}
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return fmt.Sprintf("invalid configuration (%d problems): %s", len(es), strings.Join(parts, "; "))
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
		Worker:   r.worker(),
	}
	c.LogFormat = r.logFormat(c.Env)
	c.Redis = r.redis(c.Env)
	c.Mongo = r.mongo(c.Env, c.Worker.Concurrency)
	c.S3 = r.s3(c.Env)
	c.LiveKit = r.livekit(c.Env)
	c.OpenAI = r.openai(c.Env)
	c.LogTail = r.logtail(c.Env)
	c.Health = r.health()
	c.Queue = r.queue()
	c.Fleet = r.fleet(c.Env, c.Worker)
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
	c := r.logtail(r.env())
	if c.SourceToken == "" {
		r.fail("LOGTAIL_SOURCE_TOKEN", "is required")
	}
	return c, r.err()
}

// LoadRedis reads only what talking to Redis needs (plus APP_ENV).
func LoadRedis(lookup LookupFunc) (Redis, error) {
	r := &reader{lookup: lookup}
	c := r.redis(r.env())
	return c, r.err()
}

// LoadMongo reads only what talking to MongoDB needs (plus APP_ENV).
func LoadMongo(lookup LookupFunc) (Mongo, error) {
	r := &reader{lookup: lookup}
	c := r.mongo(r.env(), r.concurrency())
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

// Log formats (LOG_FORMAT).
const (
	LogAuto    = "auto"
	LogJSON    = "json"
	LogConsole = "console"
)

// logFormat reads LOG_FORMAT. Staging and production write JSON whatever
// is asked: Heroku's log stream, the drain and the runbook's queries read
// JSON lines.
func (r *reader) logFormat(env Env) string {
	f := strings.ToLower(r.str("LOG_FORMAT", LogAuto))
	switch f {
	case LogAuto, LogJSON:
		return f
	case LogConsole:
		if env != Development {
			r.fail("LOG_FORMAT", "console is for APP_ENV=development only; %s writes JSON lines", env)
			return LogJSON
		}
		return f
	}
	r.fail("LOG_FORMAT", "must be auto, json or console, got %q", f)
	return LogAuto
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

func (r *reader) redis(env Env) Redis {
	var c Redis
	for _, name := range redisURLVars {
		if v := r.str(name, ""); v != "" {
			c.URL, c.Source = v, name
			break
		}
	}
	c.InsecureSkipVerify = r.boolean("REDIS_TLS_INSECURE_SKIP_VERIFY", false)
	c.CACertPEM = r.caCert("REDIS_CA_CERT")
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
	default:
		r.requireTLS(env, c.Source, u, "rediss")
		if c.CACertPEM != "" && u.Scheme != "rediss" {
			r.fail("REDIS_CA_CERT", "is set, but %s is redis:// (no TLS): use rediss://", c.Source)
		}
	}
	if c.CACertPEM != "" && c.InsecureSkipVerify {
		r.fail("REDIS_TLS_INSECURE_SKIP_VERIFY", "must not be true with REDIS_CA_CERT: the CA is given to verify the server")
	}
	return c
}

// caCert reads a PEM bundle of CA certificates. Heroku config vars hold
// newlines, but a value pasted as one line with literal \n is accepted too.
// Nothing of the value is ever echoed.
func (r *reader) caCert(name string) string {
	v := r.str(name, "")
	if v == "" {
		return ""
	}
	if !strings.Contains(v, "\n") {
		v = strings.ReplaceAll(v, `\n`, "\n")
	}
	if strings.Contains(v, "PRIVATE KEY") {
		r.fail(name, "holds a private key: only the CA's certificate belongs here (and the key must now be considered exposed)")
		return ""
	}
	if !x509.NewCertPool().AppendCertsFromPEM([]byte(v)) {
		r.fail(name, "must hold PEM certificates (-----BEGIN CERTIFICATE----- ...)")
		return ""
	}
	return v
}

// RootCAs is the pool rediss:// verifies the server against: REDIS_CA_CERT's
// certificates, or nil for the system's.
func (c Redis) RootCAs() *x509.CertPool {
	if c.CACertPEM == "" {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(c.CACertPEM))
	return pool
}

// requireTLS refuses a plaintext endpoint when APP_ENV=production: what
// crosses the network there carries patient data, call audio or
// credentials. Outside production a plaintext (usually loopback) endpoint
// stays allowed for the local stack and its simulators.
func (r *reader) requireTLS(env Env, name string, u *url.URL, tlsSchemes ...string) {
	if env != Production {
		return
	}
	for _, s := range tlsSchemes {
		if u.Scheme == s {
			return
		}
	}
	r.fail(name, "must use %s:// (TLS) when APP_ENV=production; plaintext %s:// is refused",
		strings.Join(tlsSchemes, ":// or "), u.Scheme)
}

func (r *reader) mongo(env Env, concurrency int) Mongo {
	need := MongoPoolFor(concurrency)
	c := Mongo{
		URI:         r.required("MONGODB_URI"),
		MaxPoolSize: uint64(r.integer("MONGODB_MAX_POOL_SIZE", int(need), 1, 500)),
		NeededPool:  need,
	}
	var fromURI string
	if c.URI != "" && !strings.HasPrefix(c.URI, "mongodb://") && !strings.HasPrefix(c.URI, "mongodb+srv://") {
		r.fail("MONGODB_URI", "must start with mongodb:// or mongodb+srv://")
	} else if c.URI != "" {
		if env == Production && !mongoTLS(c.URI) {
			r.fail("MONGODB_URI", "must use TLS when APP_ENV=production: mongodb+srv:// (TLS by default) or tls=true, and no tls=false")
		}
		var err error
		if fromURI, err = URIDatabase(c.URI); err != nil {
			r.fail("MONGODB_URI", "%v", err)
		} else if fromURI != "" {
			r.databaseName("MONGODB_URI", "names database %q in its path, which is not a MongoDB database name (no /\\. \"$, at most 63 characters)", fromURI)
		}
	}
	fromVar := r.str("MONGODB_DATABASE", "")
	if fromVar != "" {
		r.databaseName("MONGODB_DATABASE", "must be a MongoDB database name (no /\\. \"$, at most 63 characters), got %q", fromVar)
	}
	switch {
	case fromURI != "" && fromVar != "" && fromURI != fromVar:
		// A backend using the same URI writes to the URI's database (the
		// Node.js driver, and ours, read it there): the worker must not
		// quietly read another one.
		r.fail("MONGODB_DATABASE", "is %q but MONGODB_URI names database %q in its path: "+
			"a backend sharing MONGODB_URI writes to %q. Unset MONGODB_DATABASE or make the two the same", fromVar, fromURI, fromURI)
		c.Database, c.DatabaseSource = fromURI, FromURI
	case fromURI != "":
		c.Database, c.DatabaseSource = fromURI, FromURI
	case fromVar != "":
		c.Database, c.DatabaseSource = fromVar, FromVariable
	default:
		c.Database, c.DatabaseSource = DefaultDatabase, FromDefault
	}
	return c
}

// databaseName refuses a name MongoDB does not accept as a database.
func (r *reader) databaseName(name, format, db string) {
	if strings.ContainsAny(db, `/\. "$`) || len(db) > 63 {
		r.fail(name, format, db)
	}
}

// URIDatabase returns the database a MongoDB connection string names in
// its path ("" when none), read as the drivers read it: after the hosts,
// between "/" and "?", percent-decoded. No DNS lookup (mongodb+srv://) is
// made. Errors never quote the URI, which holds a password.
func URIDatabase(uri string) (string, error) {
	rest, ok := strings.CutPrefix(uri, "mongodb+srv://")
	if !ok {
		if rest, ok = strings.CutPrefix(uri, "mongodb://"); !ok {
			return "", errors.New("must start with mongodb:// or mongodb+srv://")
		}
	}
	// The user info ends at the first "@"; the drivers refuse a "/" in it,
	// so an "@" after a "/" is not user info.
	if at := strings.IndexByte(rest, '@'); at >= 0 && !strings.ContainsRune(rest[:at], '/') {
		rest = rest[at+1:]
	}
	i := strings.IndexAny(rest, "/?")
	if i < 0 || rest[i] == '?' {
		return "", nil
	}
	path, _, _ := strings.Cut(rest[i+1:], "?")
	db, err := url.QueryUnescape(path)
	if err != nil {
		return "", errors.New("has a database name in its path that is not validly percent-encoded")
	}
	return db, nil
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

// mongoTLS reports whether the driver will use TLS for uri: mongodb+srv://
// turns it on unless tls (or its old name ssl) says false; mongodb:// only
// when tls=true is given.
func mongoTLS(uri string) bool {
	_, query, _ := strings.Cut(uri, "?")
	opts, err := url.ParseQuery(query)
	if err != nil {
		return false
	}
	on := strings.HasPrefix(uri, "mongodb+srv://")
	for _, k := range []string{"tls", "ssl"} {
		if v := opts.Get(k); v != "" {
			on = strings.EqualFold(v, "true")
		}
	}
	return on
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
	} else {
		r.requireTLS(env, "LIVEKIT_URL", u, "wss", "https")
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
	} else {
		r.requireTLS(env, "OPENAI_BASE_URL", u, "https")
	}
	return c
}

func (r *reader) logtail(env Env) LogTail {
	c := LogTail{
		SourceToken: r.str("LOGTAIL_SOURCE_TOKEN", ""),
		IngestURL:   r.str("LOGTAIL_INGEST_URL", "https://in.logs.betterstack.com"),
		BufferBytes: r.integer("LOGTAIL_BUFFER_BYTES", 8<<20, 64<<10, 256<<20),
	}
	if u, err := url.Parse(c.IngestURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r.fail("LOGTAIL_INGEST_URL", "must be an http(s) URL")
	} else {
		r.requireTLS(env, "LOGTAIL_INGEST_URL", u, "https")
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
		MemWarnMB:        r.integer("ALERT_MEMORY_WARN_MB", DefaultMemWarnMB, 16, 1<<20),
		MemCritMB:        r.integer("ALERT_MEMORY_CRIT_MB", DefaultMemCritMB, 16, 1<<20),
		memWarnSet:       r.str("ALERT_MEMORY_WARN_MB", "") != "",
		memCritSet:       r.str("ALERT_MEMORY_CRIT_MB", "") != "",
		QueueWarn:        r.integer("ALERT_QUEUE_WARN", 100, 1, 1<<30),
		QueueCrit:        r.integer("ALERT_QUEUE_CRIT", 200, 1, 1<<30),
		ErrorRateWarnPct: r.integer("ALERT_ERROR_RATE_WARN_PCT", 5, 1, 100),
		ErrorRateCritPct: r.integer("ALERT_ERROR_RATE_CRIT_PCT", 10, 1, 100),
		RedisMemWarnPct:  r.integer("ALERT_REDIS_MEMORY_WARN_PCT", 60, 1, 100),
		RedisMemCritPct:  r.integer("ALERT_REDIS_MEMORY_CRIT_PCT", 80, 1, 100),
		MetricsAddr:      r.metricsAddr(),
		HerokuMetricsURL: r.httpURL("HEROKU_METRICS_URL"),
	}
	pairs := []struct {
		warn, crit int
		name       string
	}{
		{c.CPUWarnPct, c.CPUCritPct, "ALERT_CPU_CRIT_PCT"},
		{c.MemWarnMB, c.MemCritMB, "ALERT_MEMORY_CRIT_MB"},
		{c.QueueWarn, c.QueueCrit, "ALERT_QUEUE_CRIT"},
		{c.ErrorRateWarnPct, c.ErrorRateCritPct, "ALERT_ERROR_RATE_CRIT_PCT"},
		{c.RedisMemWarnPct, c.RedisMemCritPct, "ALERT_REDIS_MEMORY_CRIT_PCT"},
	}
	c.MemorySource = memorySource(c.memWarnSet, c.memCritSet, "the defaults for a 512 MB dyno")
	for _, p := range pairs {
		if p.crit < p.warn {
			r.fail(p.name, "must not be below its warning level (%d < %d)", p.crit, p.warn)
		}
	}
	return c
}

// The memory alert levels without ALERT_MEMORY_*_MB and without a known
// limit: a standard-1x dyno's 512 MB.
const (
	DefaultMemWarnMB = 450
	DefaultMemCritMB = 490
)

// The memory levels as fractions of the process's memory limit when they
// are not set: 450 and 490 MB of a 512 MB dyno. Warning leaves room for
// the calls already running when backpressure starts; critical comes
// before Heroku's R14 (swapping) at the limit.
const (
	MemWarnFraction = float64(DefaultMemWarnMB) / 512
	MemCritFraction = float64(DefaultMemCritMB) / 512
)

// WithMemoryLimit returns h with each memory level that was not set derived
// from limitBytes, the process's memory limit (its cgroup's, read by the
// daemon: config reads only the environment), named by from. A limit of 0
// or less (none found) keeps 450 and 490 MB. MemorySource says which
// applied, for worker.config.
func (h Health) WithMemoryLimit(limitBytes int64, from string) Health {
	if h.memWarnSet && h.memCritSet {
		return h
	}
	if limitBytes <= 0 {
		h.MemorySource = memorySource(h.memWarnSet, h.memCritSet, "the defaults for a 512 MB dyno (no memory limit found)")
		return h
	}
	limitMB := float64(limitBytes) / (1 << 20)
	if !h.memWarnSet {
		h.MemWarnMB = max(int(limitMB*MemWarnFraction), 16)
		if h.memCritSet {
			h.MemWarnMB = min(h.MemWarnMB, h.MemCritMB)
		}
	}
	if !h.memCritSet {
		h.MemCritMB = max(int(limitMB*MemCritFraction), h.MemWarnMB)
	}
	h.MemorySource = memorySource(h.memWarnSet, h.memCritSet,
		fmt.Sprintf("%.0f%% and %.0f%% of the %.0f MB memory limit (%s)", MemWarnFraction*100, MemCritFraction*100, limitMB, from))
	return h
}

// memorySource says where the memory levels came from.
func memorySource(warnSet, critSet bool, derived string) string {
	switch {
	case warnSet && critSet:
		return "ALERT_MEMORY_WARN_MB and ALERT_MEMORY_CRIT_MB"
	case warnSet:
		return "ALERT_MEMORY_WARN_MB; critical from " + derived
	case critSet:
		return "ALERT_MEMORY_CRIT_MB; warning from " + derived
	default:
		return derived
	}
}

// httpURL reads an optional http(s) URL, never echoing it.
func (r *reader) httpURL(name string) string {
	v := r.str(name, "")
	if v == "" {
		return ""
	}
	if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r.fail(name, "must be an http(s) URL")
		return ""
	}
	return v
}

// metricsAddr reads METRICS_ADDR. The endpoint is unauthenticated, so a
// bare ":9090" means loopback only; listening on other interfaces takes a
// host written out (0.0.0.0:9090 or a specific address).
func (r *reader) metricsAddr() string {
	v := r.str("METRICS_ADDR", "")
	if v == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(v)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		r.fail("METRICS_ADDR", "must be host:port like 127.0.0.1:9090, or :9090 for loopback only")
		return ""
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func (r *reader) queue() Queue {
	return Queue{
		ArchiveMaxAge:       r.duration("QUEUE_ARCHIVE_MAX_AGE", 7*24*time.Hour, time.Hour, 90*24*time.Hour),
		ArchiveMaxBytes:     int64(r.integer("QUEUE_ARCHIVE_MAX_MB", 10, 1, 1024)) << 20,
		InlineArchiveMaxAge: r.duration("QUEUE_ARCHIVE_INLINE_MAX_AGE", time.Hour, time.Minute, 7*24*time.Hour),
		JanitorInterval:     r.duration("QUEUE_JANITOR_INTERVAL", time.Minute, time.Second, time.Hour),
	}
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
