package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/analysis/chatsim"
	"github.com/docshield/voice-worker/internal/campaign"
	"github.com/docshield/voice-worker/internal/openaisim"
	"github.com/docshield/voice-worker/internal/phone"
	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/tasks"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/zap"
)

// fleetProfile sizes TestFleetRun: the short one runs with the tests, the
// full one (FLEETRUN=full) under `make fleet`.
type fleetProfile struct {
	contacts    [3]int // per campaign
	limits      [3]int // each campaign's concurrency_limit
	concurrency int    // WORKER_CONCURRENCY of each process
	dialRate    float64
	// interval is CAMPAIGN_DISPATCH_INTERVAL. A round fills each
	// campaign's concurrency_limit (queued attempts count), so with calls
	// this short the fleet calls at most the limits' sum per interval:
	// limits of 36 in all bounded one process and four alike at 2.4
	// calls/s with 15 s rounds. Shorter rounds cost the local FerretDB more
	// than they gave (4 s rounds timed out), so the full profile's limits
	// cover a round at the dial rate instead. A round must finish inside
	// the interval.
	interval time.Duration
	// solo and fleet are how many calls each throughput window counts:
	// one process, then four (after each has placed a call).
	solo, fleet int
	timeout     time.Duration // the whole run's bound
}

var fleetProfiles = map[string]fleetProfile{
	"short": {contacts: [3]int{20, 20, 20}, limits: [3]int{3, 4, 5}, concurrency: 3, dialRate: 2, interval: 2 * time.Second,
		solo: 8, fleet: 16, timeout: 8 * time.Minute},
	"full": {contacts: [3]int{700, 700, 600}, limits: [3]int{20, 28, 32}, concurrency: 4, dialRate: 4, interval: 15 * time.Second,
		solo: 100, fleet: 400, timeout: 40 * time.Minute},
}

const (
	fleetProcesses = 4
	// victimIndex is the process killed mid-call; its calls' greeting
	// lasts victimGreetingMS, the others' 800 ms.
	victimIndex      = 1
	victimGreetingMS = 6000
)

// TestFleetRun: four worker processes, the real binary, on one Redis and
// one MongoDB, call three campaigns' contacts through the callee simulator
// (short calls: a greeting that ends the call). One process is SIGKILLed
// mid-call and restarted. Shown:
//   - no attempt and no contact is dialled twice, counted where the phone
//     network sees dials (the simulated network's calleesim.dial lines of
//     every process, the killed one's included);
//   - each campaign's concurrency_limit holds fleet-wide, sampled from the
//     calls collection's live statuses all through the run;
//   - the dial rate holds: every dial took a slot of the fleet's Redis
//     bucket first, and the slots hold DIAL_RATE_PER_SECOND within one
//     token of the burst;
//   - every contact settles: completed, or (the calls the kill cut)
//     interrupted, owned by the killed process, and finished by the
//     dispatcher's repair round once SettleAfter has passed; each campaign
//     completes.
//
// Throughput with one process and then with four, in the same run, is
// logged, not asserted (the machine is shared; `make fleet` reports it).
func TestFleetRun(t *testing.T) {
	// Parallel: its own Redis, database and campaigns; it is the longest
	// test of the package, and the others fit beside it.
	t.Parallel()
	name := os.Getenv("FLEETRUN")
	if name == "" {
		name = "short"
	}
	prof, ok := fleetProfiles[name]
	require.True(t, ok, "FLEETRUN=%q: want short or full", name)
	start := time.Now()
	deadline := start.Add(prof.timeout)
	ctx := t.Context()

	greeting := func(audioMS int) realtimesim.Script {
		return realtimesim.Script{Agent: []realtimesim.AgentTurn{{
			Text: "Hi, this is DocShield: your appointment is confirmed. Goodbye!", AudioMS: audioMS,
			Tool: &realtimesim.ToolCall{Name: "end_call", Arguments: json.RawMessage(`{"reason":"confirmed"}`)},
		}}}
	}
	sim, base, err := openaisim.Start("127.0.0.1:0", "sk-fleet-key", greeting(800), chatsim.Script{})
	require.NoError(t, err)
	t.Cleanup(sim.Close)
	// The process to be killed speaks a longer greeting, so that the kill
	// lands mid-call: a call's status in MongoDB trails the call (its
	// writes go in the background), and with 800 ms calls a call seen in
	// progress had sometimes ended before the kill, which then cut none.
	slowSim, slowBase, err := openaisim.Start("127.0.0.1:0", "sk-fleet-key", greeting(victimGreetingMS), chatsim.Script{})
	require.NoError(t, err)
	t.Cleanup(slowSim.Close)
	r := testenv.StartRedis(t)
	env := stackEnv(t, r.URL())
	for _, k := range []string{"LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"} {
		env[k] = testenv.Get(t, k)
	}
	for k, v := range map[string]string{
		"DIALER": "sim", "OPENAI_API_KEY": "sk-fleet-key", "OPENAI_BASE_URL": base,
		"WORKER_CONCURRENCY":         fmt.Sprint(prof.concurrency),
		"CAMPAIGN_DISPATCH_INTERVAL": prof.interval.String(),
		// Short, so the killed process's calls are reaped soon, but longer
		// than the database's worst stall: under make test-busy FerretDB
		// answered writes 10 s late, and a 6 s lease lapsed under live
		// calls whose renewals were stuck (production's is 2 min).
		"CALL_LEASE":           "30s",
		"DIAL_RATE_PER_SECOND": fmt.Sprint(prof.dialRate),
		"DIAL_RATE_BURST":      "1",
		"FLEET_MAX_DYNOS":      fmt.Sprint(fleetProcesses),
		"SHUTDOWN_TIMEOUT":     "10s",
	} {
		env[k] = v
	}
	st := openCallStore(t, env)
	t.Cleanup(func() { _ = st.DB().Drop(context.Background()) })
	campaigns := insertFleetCampaigns(t, st, prof)
	total := prof.contacts[0] + prof.contacts[1] + prof.contacts[2]
	_, insp := asynqClients(t, r)

	samp := startLiveSampler(t, st, campaigns)
	procs := make([]*fleetProc, fleetProcesses)
	var started []*fleetProc // every process started, in order
	t.Cleanup(func() {
		if t.Failed() {
			fleetDiagnose(t, st, procs)
		}
	})
	startProc := func(i int) {
		e := maps.Clone(env)
		e["WORKER_NAME"] = fmt.Sprintf("fleet-%d", i)
		if i == victimIndex {
			e["OPENAI_BASE_URL"] = slowBase
		}
		procs[i] = startFleetProc(t, e["WORKER_NAME"], e)
		started = append(started, procs[i])
	}
	// Calls ended, as the processes log them (every one started, the
	// killed one's included): counting terminal attempts in MongoDB each
	// second made the local FerretDB decode every ended call, and that,
	// not the fleet, bounded the full run.
	ended := func() int {
		n := 0
		for _, p := range started {
			n += p.count("call.ended")
		}
		return n
	}
	progress := func() string {
		var rounds, failed int
		var last string
		for _, p := range procs {
			if p != nil {
				rounds, failed = rounds+p.count("campaign.round"), failed+p.count("campaign.round_failed")
				p.mu.Lock()
				last = cmp.Or(p.failed, last)
				p.mu.Unlock()
			}
		}
		return fmt.Sprintf("campaign.round lines %d, campaign.round_failed %d (last: %.300s)", rounds, failed, last)
	}

	// One process: its throughput, once it is warm.
	startProc(0)
	soloFrom := waitCount(t, "the first calls of one process", deadline, ended, prof.concurrency, progress)
	soloTo := waitCount(t, "one process's window of calls", deadline, ended, soloFrom.n+prof.solo, progress)
	t.Logf("%s: one process ended %d calls, %.2f calls/s in its window", time.Since(start).Round(time.Second), soloTo.n, soloTo.rate(soloFrom))

	// Four: the window starts once each of the three new ones placed a call.
	for i := 1; i < fleetProcesses; i++ {
		startProc(i)
	}
	fleetWait(t, "each new process placing a call", deadline, func() bool {
		for _, p := range procs[1:] {
			if p.count("call.answered") == 0 {
				return false
			}
		}
		return true
	})
	fleetFrom := waitCount(t, "four processes warm", deadline, ended, 0, progress)
	fleetTo := waitCount(t, "four processes' window of calls", deadline, ended, fleetFrom.n+prof.fleet, progress)
	t.Logf("%s: four processes, %d calls ended, %.2f calls/s in their window", time.Since(start).Round(time.Second), fleetTo.n, fleetTo.rate(fleetFrom))
	require.Less(t, fleetTo.n, total, "the kill must come mid-run: give the profile more contacts")

	// SIGKILL one mid-call, as the kernel's OOM killer or a lost host
	// would, then start it again as Heroku restarts a crashed dyno.
	// Mid-call by both counts: its own log (a call answered less than half
	// a greeting ago) and the store (one of its calls in progress).
	victim := procs[victimIndex]
	fleetWait(t, "the victim in a call", deadline, func() bool {
		answered := victim.events("call.answered")
		return len(answered) > 0 && time.Since(answered[len(answered)-1].TS) < victimGreetingMS*time.Millisecond/2 &&
			countCalls(t, st, []store.CallStatus{store.CallInProgress}, bson.E{Key: "owner", Value: victim.owner}) > 0
	})
	require.NoError(t, victim.cmd.Process.Signal(syscall.SIGKILL))
	<-victim.done
	killedAt := time.Now()
	startProc(1)
	t.Logf("%s: killed and restarted %s", time.Since(start).Round(time.Second), victim.name)

	// Drained: every contact final, but for those the kill left to the
	// repair round (a call it cut, or one it ended without living to
	// enqueue its analysis); no call live; no call task left in the queue (the killed
	// process's tasks come back once asynq sees its lease lapse).
	fleetWait(t, "every contact settled or cut by the kill", deadline, func() bool {
		return len(unsettledContacts(t, st, victim.owner)) == 0 && countCalls(t, st, liveCallStatuses) == 0
	})
	t.Logf("%s: every contact settled or cut by the kill", time.Since(start).Round(time.Second))
	// A task the killed process held comes back as a retry, with a call
	// task's backoff (30 to 60 s). What counts is that it came back and
	// that running it again changes nothing (no second dial, counted
	// below), so it runs at once rather than at the end of its backoff.
	retriedEarly := 0
	fleetWait(t, "the call and analysis queues empty", deadline, func() bool {
		empty := true
		for _, q := range []string{tasks.QueueCalls, tasks.QueueAnalysis} {
			qi, err := insp.GetQueueInfo(q)
			if err != nil {
				return false
			}
			if qi.Retry > 0 {
				n, err := insp.RunAllRetryTasks(q)
				require.NoError(t, err)
				retriedEarly += n
			}
			empty = empty && qi.Pending+qi.Active+qi.Scheduled+qi.Retry+qi.Aggregating == 0
		}
		return empty
	})
	drained := time.Now()
	t.Logf("%s: drained (%d tasks back from the killed process or deferred were run before their backoff ended)",
		time.Since(start).Round(time.Second), retriedEarly)
	samp.stop()
	for _, p := range procs[1:] {
		if p != victim {
			require.NoError(t, p.sigterm(t), p.tail())
		}
	}
	require.NoError(t, procs[0].sigterm(t), procs[0].tail())

	// The cut calls: interrupted, all the killed process's.
	calls := allCalls(t, st)
	var cut []string
	for _, c := range calls {
		require.LessOrEqual(t, c.Claims, 1, "attempt %s claimed %d times", c.ID, c.Claims)
		if c.Status == store.CallInterrupted {
			require.Equal(t, victim.owner, c.Owner, "only the killed process's calls are cut: %s", c.ID)
			cut = append(cut, c.ID)
		}
	}
	require.NotEmpty(t, cut, "the victim was in a call when it was killed")

	// The dispatcher's repair round, as it runs once SettleAfter has
	// passed (the clock moved, not waited for), finishes their contacts.
	// At the start of a round: a round must end before the next one
	// starts, by the clock it is given, and one given the last moments of
	// a round ran out of time at once (context deadline exceeded).
	iv := int64(campaign.DefaultInterval)
	later := time.Unix(0, time.Now().Add(campaign.DefaultSettleAfter+time.Minute).UnixNano()/iv*iv)
	svc := campaign.New(st, nil, campaign.Options{Now: func() time.Time { return later }, Logger: zap.NewNop()})
	for _, c := range campaigns {
		_, err := svc.Round(ctx, c.id)
		require.NoError(t, err)
	}
	require.Empty(t, unsettledContacts(t, st, ""))

	// Every contact final; every campaign completed.
	contacts := allContacts(t, st)
	require.Len(t, contacts, total)
	byStatus := map[store.ContactStatus]int{}
	for _, c := range contacts {
		byStatus[c.Status]++
	}
	require.Equal(t, len(cut), byStatus[store.ContactExhausted], "only the cut calls' contacts are exhausted: %v", byStatus)
	require.Equal(t, total-len(cut), byStatus[store.ContactCompleted], "%v", byStatus)
	for _, c := range campaigns {
		got, err := st.GetCampaign(ctx, c.id)
		require.NoError(t, err)
		require.Equal(t, store.CampaignCompleted, got.Status, "campaign %d", c.n)
	}

	// Dials, as the phone network counts them.
	var dials, slots []fleetEvent
	for _, p := range append(procs, victim) {
		d, s := p.events("calleesim.dial"), p.events("dial.slot")
		dials, slots = append(dials, d...), append(slots, s...)
		// Every dial took a slot of the fleet's bucket first.
		slotAt := map[string]time.Time{}
		for _, e := range s {
			slotAt[e.AttemptID] = e.TS
		}
		for _, e := range d {
			at, ok := slotAt[e.attempt()]
			require.True(t, ok, "%s: dial of %s without a slot", p.name, e.attempt())
			require.False(t, at.After(e.TS), "%s: %s dialled before its slot", p.name, e.attempt())
		}
	}
	perAttempt, perContact := map[string]int{}, map[string]int{}
	for _, e := range dials {
		perAttempt[e.attempt()]++
		contact, _, _ := strings.Cut(e.attempt(), "-")
		perContact[contact]++
	}
	for id, n := range perAttempt {
		require.Equal(t, 1, n, "attempt %s dialled %d times", id, n)
	}
	for id, n := range perContact {
		require.Equal(t, 1, n, "contact %s dialled %d times", id, n)
	}
	for _, c := range contacts {
		if c.Status == store.ContactCompleted {
			require.Equal(t, 1, perAttempt[c.LastAttemptID], "completed contact %s: its call was dialled once, seen by the network", c.ID.Hex())
		}
	}

	// The rate, at the bucket (where it is held: the slots' own times, not
	// when a starved process got round to logging them) and at the
	// network (logged, not held to: the dials follow each process's
	// wake-up).
	slotTimes := make([]time.Time, len(slots))
	for i, e := range slots {
		require.False(t, e.SlotAt.IsZero(), "dial.slot without slot_at")
		slotTimes[i] = e.SlotAt
	}
	slotExcess, dialExcess := testenv.MaxExcess(slotTimes, prof.dialRate), testenv.MaxExcess(eventTimes(dials), prof.dialRate)
	require.LessOrEqual(t, slotExcess, 2.0, "the fleet's slots hold the rate within one token of the burst (1)")

	// Each campaign's limit, fleet-wide.
	maxLive, samples := samp.result()
	require.Greater(t, samples, 10, "the live attempts were sampled all through the run")
	for i, c := range campaigns {
		require.LessOrEqual(t, maxLive[c.id], prof.limits[i], "campaign %d: live attempts over its concurrency_limit", c.n)
	}

	t.Logf("dispatch: %s", progress())
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("fleet run (%s): %d contacts in 3 campaigns, %d processes × WORKER_CONCURRENCY=%d, dial rate %g/s burst 1, in %s (drained %s after the kill)",
		name, total, fleetProcesses, prof.concurrency, prof.dialRate, drained.Sub(start).Round(time.Second), drained.Sub(killedAt).Round(time.Second))
	t.Logf("throughput: 1 process %.2f calls/s (%d calls in %s); %d processes %.2f calls/s (%d calls in %s)",
		soloTo.rate(soloFrom), soloTo.n-soloFrom.n, soloTo.at.Sub(soloFrom.at).Round(time.Millisecond), fleetProcesses,
		fleetTo.rate(fleetFrom), fleetTo.n-fleetFrom.n, fleetTo.at.Sub(fleetFrom.at).Round(time.Millisecond))
	t.Logf("dials: %d (%d slots), each attempt and contact once; mean %.2f dials/s; worst window over the rate: %.2f at the bucket, %.2f at the network",
		len(dials), len(slots), meanRate(eventTimes(dials)), slotExcess, dialExcess)
	for i, c := range campaigns {
		t.Logf("campaign %d: concurrency_limit %d, most live attempts seen %d (%d samples)", c.n, prof.limits[i], maxLive[c.id], samples)
	}
	t.Logf("kill: %d calls cut (interrupted, their contacts exhausted by the repair round); contacts %v", len(cut), byStatus)
	for _, p := range append(procs, victim) {
		t.Logf("%s (pid %d): %d calls answered", p.name, p.cmd.Process.Pid, p.count("call.answered"))
	}
	t.Logf("load average at the end: %s (the machine is shared)", strings.TrimSpace(string(load)))
}

type fleetCampaign struct {
	id bson.ObjectID
	n  int
}

// insertFleetCampaigns writes the profile's three campaigns and their
// contacts as the backend does (docs/CAMPAIGNS.md): scheduled campaigns,
// pending contacts with attempts 0, numbers ringing where it is
// mid-afternoon now, so every contact is callable.
func insertFleetCampaigns(t *testing.T, st *store.Store, prof fleetProfile) []fleetCampaign {
	t.Helper()
	ctx := t.Context()
	sample := testenv.SampleAt(time.Now(), testenv.Afternoon)
	now := time.Now().UTC()
	prefix := sample.Phone[:len(sample.Phone)-4]
	var out []fleetCampaign
	seq := 0
	for i := range 3 {
		res, err := st.DB().Collection(store.CollCampaigns).InsertOne(ctx, bson.M{
			"name":   fmt.Sprintf("Fleet run %d", i+1),
			"status": "scheduled",
			"agent":  bson.M{"instructions_template": "Confirm the appointment, then end the call.", "tools": bson.A{"end_call"}},
			"schedule": bson.M{"window_start": now.Add(-time.Hour), "calling_hours_start": "08:00", "calling_hours_end": "21:00",
				"calling_days": bson.A{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}, "default_time_zone": sample.Zone},
			"concurrency_limit": prof.limits[i],
			"retry":             bson.M{"max_attempts": 1},
			"created_at":        now, "updated_at": now,
		})
		require.NoError(t, err)
		id := res.InsertedID.(bson.ObjectID)
		out = append(out, fleetCampaign{id: id, n: i + 1})
		var docs []any
		for range prof.contacts[i] {
			number := fmt.Sprintf("%s%04d", prefix, seq)
			seq++
			zones, err := phone.Zones(number)
			require.NoError(t, err)
			require.Equal(t, []string{sample.Zone}, zones, "%s rings where the sample does", number)
			docs = append(docs, bson.M{"campaign_id": id, "phone": number, "status": "pending", "attempts": 0,
				"created_at": now, "updated_at": now})
		}
		_, err = st.DB().Collection(store.CollContacts).InsertMany(ctx, docs)
		require.NoError(t, err)
	}
	return out
}

// liveCallStatuses count against a campaign's concurrency_limit, in the
// order an attempt takes them: counted one by one in this order, an
// attempt moving on between two counts is counted twice, never missed.
var liveCallStatuses = []store.CallStatus{store.CallQueued, store.CallDialing, store.CallRinging, store.CallInProgress}

// latestFirst is liveCallStatuses reversed.
var latestFirst = func() []store.CallStatus {
	out := slices.Clone(liveCallStatuses)
	slices.Reverse(out)
	return out
}()

// The test's own queries while the fleet runs ask one status at a time,
// by equality: the local FerretDB hands an equality filter to PostgreSQL
// and decodes only the documents that match, but filters $in, $or and
// ranges itself after decoding every document of the collection. Polled
// each second over thousands of calls, those scans were most of what
// limited the full run.

// countCalls counts attempts in statuses (and matching more, equalities);
// -1 when MongoDB did not answer in time (a busy machine), which no wait
// takes for done.
func countCalls(t *testing.T, st *store.Store, statuses []store.CallStatus, more ...bson.E) int {
	qctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	total := 0
	for _, s := range statuses {
		f := bson.D{{Key: "status", Value: s}}
		n, err := st.DB().Collection(store.CollCalls).CountDocuments(qctx, append(f, more...))
		if err != nil {
			return -1
		}
		total += int(n)
	}
	return total
}

// findEach runs find once per filter, one equality each, and decodes the
// results into out, in order.
func findEach[T any](ctx context.Context, coll *mongo.Collection, filters []bson.D, projection bson.M, out *[]T) error {
	for _, f := range filters {
		var part []T
		cur, err := coll.Find(ctx, f, options.Find().SetProjection(projection))
		if err == nil {
			err = cur.All(ctx, &part)
		}
		if err != nil {
			return err
		}
		*out = append(*out, part...)
	}
	return nil
}

// byStatus makes one equality filter per status.
func byStatus[S ~string](statuses ...S) []bson.D {
	out := make([]bson.D, len(statuses))
	for i, s := range statuses {
		out[i] = bson.D{{Key: "status", Value: s}}
	}
	return out
}

// unsettledContacts are the pending contacts, less those the dispatcher's
// repair round settles later: whose attempt the kill cut (interrupted), or
// whose attempt killed ended but did not live to hand on to its analysis
// (ended, owned by killed; "" for none).
func unsettledContacts(t *testing.T, st *store.Store, killed string) []bson.ObjectID {
	var pending []struct {
		ID bson.ObjectID `bson:"_id"`
	}
	var cut []struct {
		Contact bson.ObjectID    `bson:"contact_id"`
		Status  store.CallStatus `bson:"status"`
	}
	qctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := findEach(qctx, st.DB().Collection(store.CollContacts), byStatus(store.ContactPending, store.ContactCalling),
		bson.M{"_id": 1}, &pending)
	if err == nil {
		repair := byStatus(store.CallInterrupted)
		if killed != "" {
			repair = append(repair, bson.D{{Key: "owner", Value: killed}})
		}
		err = findEach(qctx, st.DB().Collection(store.CollCalls), repair, bson.M{"contact_id": 1, "status": 1}, &cut)
	}
	if err != nil {
		return []bson.ObjectID{{}} // unknown: not settled
	}
	skip := map[bson.ObjectID]bool{}
	for _, c := range cut {
		// The killed process's live attempts are not the repair round's.
		if c.Status.Terminal() {
			skip[c.Contact] = true
		}
	}
	var out []bson.ObjectID
	for _, p := range pending {
		if !skip[p.ID] {
			out = append(out, p.ID)
		}
	}
	return out
}

func allCalls(t *testing.T, st *store.Store) []store.Call {
	t.Helper()
	var out []store.Call
	cur, err := st.DB().Collection(store.CollCalls).Find(t.Context(), bson.M{},
		options.Find().SetProjection(bson.M{"transcript": 0, "tool_calls": 0}))
	require.NoError(t, err)
	require.NoError(t, cur.All(t.Context(), &out))
	return out
}

func allContacts(t *testing.T, st *store.Store) []store.Contact {
	t.Helper()
	var out []store.Contact
	cur, err := st.DB().Collection(store.CollContacts).Find(t.Context(), bson.M{})
	require.NoError(t, err)
	require.NoError(t, cur.All(t.Context(), &out))
	return out
}

// fleetWait polls cond until it holds, failing the test at deadline.
func fleetWait(t *testing.T, what string, deadline time.Time, cond func() bool) {
	t.Helper()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Second) // polling interval, not synchronisation; MongoDB is shared with the fleet
	}
}

// mark is a count of ended calls and when it was seen.
type mark struct {
	n  int
	at time.Time
}

func (m mark) rate(from mark) float64 { return float64(m.n-from.n) / m.at.Sub(from.at).Seconds() }

// waitCount waits until count() reaches at least n and marks it.
func waitCount(t *testing.T, what string, deadline time.Time, count func() int, n int, progress func() string) mark {
	t.Helper()
	var m mark
	logged := time.Now()
	fleetWait(t, what, deadline, func() bool {
		m = mark{count(), time.Now()}
		if m.at.Sub(logged) >= time.Minute {
			t.Logf("%s: %d calls ended, waiting for %d; %s", what, m.n, n, progress())
			logged = m.at
		}
		return m.n >= n
	})
	return m
}

// liveSampler counts each campaign's live attempts (queued or in a call)
// in the calls collection, again and again, keeping the most seen.
type liveSampler struct {
	stopc chan struct{}
	done  chan struct{}
	// Written by the sampling goroutine until done is closed.
	max     map[bson.ObjectID]int
	samples int
}

func startLiveSampler(t *testing.T, st *store.Store, campaigns []fleetCampaign) *liveSampler {
	s := &liveSampler{stopc: make(chan struct{}), done: make(chan struct{}), max: map[bson.ObjectID]int{}}
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stopc:
				return
			case <-time.After(500 * time.Millisecond): // light on MongoDB, which the fleet shares
			}
			var live []struct {
				Campaign bson.ObjectID `bson:"campaign_id"`
			}
			qctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			// Latest status first: an attempt moving on between two finds
			// is then missed, never counted twice (the limit is a bound).
			err := findEach(qctx, st.DB().Collection(store.CollCalls), byStatus(latestFirst...), bson.M{"campaign_id": 1}, &live)
			cancel()
			if err != nil {
				continue
			}
			n := map[bson.ObjectID]int{}
			for _, l := range live {
				n[l.Campaign]++
			}
			for _, c := range campaigns {
				s.max[c.id] = max(s.max[c.id], n[c.id])
			}
			s.samples++
		}
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *liveSampler) stop() {
	select {
	case <-s.stopc:
	default:
		close(s.stopc)
	}
	<-s.done
}

// result is read after stop.
func (s *liveSampler) result() (map[bson.ObjectID]int, int) { return s.max, s.samples }

// fleetEvent is a log line of interest.
type fleetEvent struct {
	Msg       string    `json:"msg"`
	TS        time.Time `json:"ts"`
	SlotAt    time.Time `json:"slot_at"` // dial.slot: the bucket's time for it
	Room      string    `json:"room"`
	AttemptID string    `json:"attempt_id"`
	Error     string    `json:"error"`
}

// attempt is the dialled attempt: its room is named after it.
func (e fleetEvent) attempt() string { return strings.TrimPrefix(e.Room, "call-") }

func eventTimes(es []fleetEvent) []time.Time {
	out := make([]time.Time, len(es))
	for i, e := range es {
		out[i] = e.TS
	}
	return out
}

func meanRate(ts []time.Time) float64 {
	if len(ts) < 2 {
		return 0
	}
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	return float64(len(ts)-1) / ts[len(ts)-1].Sub(ts[0]).Seconds()
}

// fleetProc is a `worker run` whose log lines are read as they come: the
// events the fleet test counts are kept, and the last lines for failures.
type fleetProc struct {
	name, owner string
	cmd         *exec.Cmd
	done        chan struct{} // closed once the process exited and its output is read

	mu     sync.Mutex // guards the fields below
	counts map[string]int
	kept   map[string][]fleetEvent
	last   []string
	failed string // the error of the last campaign.round_failed
}

var fleetKept = []string{"calleesim.dial", "dial.slot", "call.answered"}

func startFleetProc(t *testing.T, name string, env map[string]string) *fleetProc {
	t.Helper()
	p := &fleetProc{name: name, cmd: binCommand(env, "run"), done: make(chan struct{}),
		counts: map[string]int{}, kept: map[string][]fleetEvent{}}
	out, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	p.cmd.Stderr = p.cmd.Stdout
	require.NoError(t, p.cmd.Start())
	p.owner = fmt.Sprintf("%s/%d", name, p.cmd.Process.Pid) // as the worker names its claims
	go func() {
		p.read(out)
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *fleetProc) read(out io.Reader) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		var e fleetEvent
		if strings.HasPrefix(line, "{") {
			_ = json.Unmarshal([]byte(line), &e)
		}
		p.mu.Lock()
		p.counts[e.Msg]++
		if slices.Contains(fleetKept, e.Msg) {
			p.kept[e.Msg] = append(p.kept[e.Msg], e)
		}
		if e.Msg == "campaign.round_failed" {
			p.failed = e.Error
		}
		if p.last = append(p.last, line); len(p.last) > 200 {
			p.last = p.last[100:]
		}
		p.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, out)
}

func (p *fleetProc) count(msg string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[msg]
}

func (p *fleetProc) events(msg string) []fleetEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.kept[msg])
}

func (p *fleetProc) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.last, "\n")
}

// sigterm stops the process as Heroku does, bounded by its 30 s.
func (p *fleetProc) sigterm(t *testing.T) error {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			return fmt.Errorf("%s exited %d", p.name, code)
		}
		return nil
	case <-time.After(30 * time.Second):
		t.Fatalf("%s still running 30s after SIGTERM:\n%s", p.name, p.tail())
		return nil
	}
}

// fleetDiagnose logs what a failed run left: attempts and contacts by
// status, a few unsettled contacts' attempts, each process's last lines.
func fleetDiagnose(t *testing.T, st *store.Store, procs []*fleetProc) {
	ctx := context.Background()
	calls, contacts := map[store.CallStatus]int{}, map[store.ContactStatus]int{}
	var cs []store.Call
	if cur, err := st.DB().Collection(store.CollCalls).Find(ctx, bson.M{}); err == nil && cur.All(ctx, &cs) == nil {
		for _, c := range cs {
			calls[c.Status]++
		}
	}
	var ks []store.Contact
	if cur, err := st.DB().Collection(store.CollContacts).Find(ctx, bson.M{}); err == nil && cur.All(ctx, &ks) == nil {
		for _, c := range ks {
			contacts[c.Status]++
		}
	}
	t.Logf("attempts by status %v; contacts by status %v", calls, contacts)
	shown := 0
	for _, c := range cs {
		if c.Status != store.CallCompleted && shown < 12 {
			shown++
			t.Logf("attempt %s %s (outcome %q) owner %q claims %d: %s", c.ID, c.Status, c.Outcome, c.Owner, c.Claims, c.Error)
		}
	}
	un := unsettledContacts(t, st, "")
	for _, id := range un[:min(len(un), 5)] {
		for _, c := range cs {
			if c.ContactID == id {
				t.Logf("unsettled contact %s: attempt %s %s owner %s ended %s", id.Hex(), c.ID, c.Status, c.Owner, c.EndedAt)
			}
		}
	}
	for _, p := range procs {
		if p != nil {
			lines := strings.Split(p.tail(), "\n")
			t.Logf("%s, last lines:\n%s", p.name, strings.Join(lines[max(0, len(lines)-15):], "\n"))
		}
	}
}
