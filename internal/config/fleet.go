package config

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Fleet settings: what many worker dynos share. The dial rate per SIP
// trunk, the connection limits of the managed services and the fleet's
// size they are checked against (`worker verify`), the leases of the
// duties one elected worker runs, admission of new calls, and the
// formation scaler (off unless AUTOSCALE=true).
type Fleet struct {
	// Dyno is Heroku's DYNO (worker.3): the scaler drains dynos by name.
	// Empty outside Heroku: such a worker is never drained.
	Dyno string
	// DialRatePerSecond caps the whole fleet's dials on the SIP trunk; 0:
	// no cap. DialRateBurst dials may go at once after a quiet spell;
	// DialRateMaxWait bounds how far ahead a call books its dial.
	DialRatePerSecond float64
	DialRateBurst     int
	DialRateMaxWait   time.Duration
	// MaxDynos is the most worker dynos the fleet runs at once; the
	// connection budgets are checked against it.
	MaxDynos int
	// MongoMaxConnections and RedisMaxConnections are the managed
	// services' limits (Atlas per node: M10 1,500; the Redis Cloud plan's).
	MongoMaxConnections int
	RedisMaxConnections int
	// LeaderLease is the lease of the elected reporter and scaler: how
	// long the fleet goes without one after it dies.
	LeaderLease time.Duration
	// AdmissionInterval is how often CPU and audio health are judged for
	// admitting new calls.
	AdmissionInterval time.Duration
	// AdmissionLateFramesPct and AdmissionDroppedInputPct are the audio
	// limits (monitor.DefaultLateFramesPct, DefaultDroppedInputPct);
	// AdmissionWaitRatio the run-queue limit (monitor.DefaultWaitRatio),
	// 0: not judged.
	AdmissionLateFramesPct   float64
	AdmissionDroppedInputPct float64
	AdmissionWaitRatio       float64
	Autoscale                Autoscale
}

// Autoscale settings: the formation scaler one elected worker runs.
type Autoscale struct {
	Enabled bool
	// APIKey and App reach the Heroku Platform API (APIURL); ProcessType
	// is the formation to scale.
	APIKey      string
	APIURL      string
	App         string
	ProcessType string
	// MinDynos and MaxDynos bound the formation; CallsPerDyno is how many
	// calls one dyno takes (WORKER_CONCURRENCY unless set).
	MinDynos, MaxDynos int
	CallsPerDyno       int
	// TargetLatency: a calls queue whose oldest task waited longer asks
	// for one more dyno, whatever the counts say.
	TargetLatency time.Duration
	// Interval between looks; UpCooldown and DownCooldown after any
	// change before growing or shrinking again; DrainTimeout bounds how
	// long dynos that will stop may finish their calls.
	Interval, UpCooldown, DownCooldown, DrainTimeout time.Duration
}

func (r *reader) fleet(env Env, w Worker) Fleet {
	c := Fleet{
		Dyno:                r.str("DYNO", ""),
		DialRatePerSecond:   r.number("DIAL_RATE_PER_SECOND", 0, 0, 1000),
		DialRateBurst:       r.integer("DIAL_RATE_BURST", 1, 1, 100),
		DialRateMaxWait:     r.duration("DIAL_RATE_MAX_WAIT", 30*time.Second, time.Second, 5*time.Minute),
		MaxDynos:            r.integer("FLEET_MAX_DYNOS", 1, 1, 1000),
		MongoMaxConnections: r.integer("MONGODB_MAX_CONNECTIONS", 1500, 10, 1_000_000),
		RedisMaxConnections: r.integer("REDIS_MAX_CONNECTIONS", 10000, 10, 1_000_000),
		LeaderLease:         r.duration("LEADER_LEASE", 15*time.Second, 3*time.Second, 5*time.Minute),
		AdmissionInterval:   r.duration("ADMISSION_INTERVAL", 5*time.Second, time.Second, time.Minute),
		// The defaults are monitor's (config_test checks they agree); config
		// does not import it.
		AdmissionLateFramesPct:   r.number("ADMISSION_LATE_FRAMES_PCT", 2, 0.1, 100),
		AdmissionDroppedInputPct: r.number("ADMISSION_DROPPED_INPUT_PCT", 1, 0.1, 100),
		AdmissionWaitRatio:       r.number("ADMISSION_CPU_WAIT_RATIO", 4, 0, 100),
	}
	c.Autoscale = r.autoscale(env, w, c.MaxDynos)
	return c
}

func (r *reader) autoscale(env Env, w Worker, fleetMax int) Autoscale {
	c := Autoscale{
		Enabled:       r.boolean("AUTOSCALE", false),
		APIKey:        r.str("HEROKU_API_KEY", ""),
		APIURL:        strings.TrimRight(r.str("HEROKU_API_URL", "https://api.heroku.com"), "/"),
		App:           r.str("HEROKU_APP_NAME", ""),
		ProcessType:   r.str("AUTOSCALE_PROCESS_TYPE", "worker"),
		MinDynos:      r.integer("AUTOSCALE_MIN_DYNOS", 1, 1, 1000), // the scaler runs in a worker: none would scale up again
		MaxDynos:      r.integer("AUTOSCALE_MAX_DYNOS", fleetMax, 1, 1000),
		CallsPerDyno:  r.integer("AUTOSCALE_CALLS_PER_DYNO", w.Concurrency, 1, 200),
		TargetLatency: r.duration("AUTOSCALE_TARGET_LATENCY", 30*time.Second, time.Second, time.Hour),
		Interval:      r.duration("AUTOSCALE_INTERVAL", 30*time.Second, time.Second, 10*time.Minute),
		UpCooldown:    r.duration("AUTOSCALE_UP_COOLDOWN", 2*time.Minute, 0, time.Hour),
		DownCooldown:  r.duration("AUTOSCALE_DOWN_COOLDOWN", 10*time.Minute, 0, 24*time.Hour),
		DrainTimeout:  r.duration("AUTOSCALE_DRAIN_TIMEOUT", 20*time.Minute, time.Second, 2*time.Hour),
	}
	if !c.Enabled {
		return c
	}
	if c.APIKey == "" {
		r.fail("HEROKU_API_KEY", "is required when AUTOSCALE=true (an API token allowed to scale the app's formation)")
	}
	if c.App == "" {
		r.fail("HEROKU_APP_NAME", "is required when AUTOSCALE=true")
	}
	if u, err := url.Parse(c.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r.fail("HEROKU_API_URL", "must be an http(s) URL like https://api.heroku.com")
	} else {
		r.requireTLS(env, "HEROKU_API_URL", u, "https")
	}
	if c.MinDynos > c.MaxDynos {
		r.fail("AUTOSCALE_MIN_DYNOS", "must not be above AUTOSCALE_MAX_DYNOS (%d > %d)", c.MinDynos, c.MaxDynos)
	}
	if c.MaxDynos > fleetMax {
		r.fail("AUTOSCALE_MAX_DYNOS", "must not be above FLEET_MAX_DYNOS (%d > %d): the connection budgets are checked against the fleet's size", c.MaxDynos, fleetMax)
	}
	return c
}

// number reads a decimal number between min and max.
func (r *reader) number(name string, def, min, max float64) float64 {
	s := r.str(name, "")
	if s == "" {
		return def
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		r.fail(name, "must be a number, got %q", s)
		return def
	}
	if n != n || n < min || n > max { // n != n: NaN
		r.fail(name, "must be between %g and %g, got %g", min, max, n)
		return def
	}
	return n
}

// LoadFleet reads what `verify fleet` needs: the fleet section, the
// worker's concurrency and the MongoDB settings (for its pool).
func LoadFleet(lookup LookupFunc) (Config, error) {
	r := &reader{lookup: lookup}
	c := Config{Env: r.env(), Worker: r.worker()}
	c.Mongo = r.mongo(c.Env, c.Worker.Concurrency)
	c.Fleet = r.fleet(c.Env, c.Worker)
	return c, r.err()
}
