package campaign

import (
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/store"
	"github.com/stretchr/testify/require"
)

func TestPolicyDefaults(t *testing.T) {
	t.Parallel()
	p, err := PolicyFrom(store.RetryPolicy{})
	require.NoError(t, err)
	require.Equal(t, 3, p.MaxAttempts)
	require.Equal(t, []time.Duration{30 * time.Minute, 2 * time.Hour, 24 * time.Hour}, p.Backoff)
	for _, o := range []Outcome{OutcomeNoAnswer, OutcomeBusy, OutcomeFailed} {
		require.True(t, p.Retries(o), o)
	}
	for _, o := range []Outcome{OutcomeVoicemail, OutcomeInterrupted, OutcomeCompleted, OutcomeOptedOut} {
		require.False(t, p.Retries(o), o)
	}
}

func TestPolicyErrorsNameTheField(t *testing.T) {
	t.Parallel()
	_, err := PolicyFrom(store.RetryPolicy{
		MaxAttempts:    50,
		RetryOutcomes:  []string{"busy", "completed", "opted_out", "bogus"},
		BackoffSeconds: []int{1800, 5, 90 * 86400},
	})
	for _, want := range []string{
		"retry.max_attempts: 50 is not between 1 and 20",
		`retry.retry_outcomes: "completed" cannot be retried`,
		`retry.retry_outcomes: "opted_out" cannot be retried`,
		`retry.retry_outcomes: "bogus" cannot be retried`,
		"retry.backoff_seconds[1]: 5 is not between",
		"retry.backoff_seconds[2]: 7776000 is not between",
	} {
		require.ErrorContains(t, err, want)
	}
	_, err = PolicyFrom(store.RetryPolicy{MaxAttempts: -1})
	require.ErrorContains(t, err, "retry.max_attempts")
}

func TestParseOutcome(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"completed", "no_answer", "busy", "voicemail", "failed", "interrupted", "cancelled", "opted_out"} {
		o, err := ParseOutcome(s)
		require.NoError(t, err)
		require.Equal(t, Outcome(s), o)
	}
	_, err := ParseOutcome("hung_up")
	require.ErrorContains(t, err, `"hung_up"`)
}

func TestDecide(t *testing.T) {
	t.Parallel()
	ny := mustZone(t, "America/New_York")
	hours, err := ParseHours("09:00", "18:00", nil) // Mon-Fri
	require.NoError(t, err)
	cal := Calendar{Hours: hours, DefaultZone: ny}
	def, err := PolicyFrom(store.RetryPolicy{})
	require.NoError(t, err)
	four, err := PolicyFrom(store.RetryPolicy{MaxAttempts: 4})
	require.NoError(t, err)
	withVoicemail, err := PolicyFrom(store.RetryPolicy{MaxAttempts: 5, RetryOutcomes: []string{"no_answer", "voicemail"},
		BackoffSeconds: []int{600}})
	require.NoError(t, err)

	tue10 := utc("2026-03-10 14:00") // Tue 10:00 EDT
	fri17 := utc("2026-03-13 21:30") // Fri 17:30 EDT
	for _, tc := range []struct {
		name   string
		p      Policy
		a      Attempt
		status store.ContactStatus
		next   time.Time
	}{
		{"completed is final", def, Attempt{Outcome: OutcomeCompleted, Dialed: 1, EndedAt: tue10}, store.ContactCompleted, time.Time{}},
		{"opted out is final even with attempts left", def, Attempt{Outcome: OutcomeOptedOut, Dialed: 1, EndedAt: tue10}, store.ContactDoNotCall, time.Time{}},
		{"opted out beats a callback", def, Attempt{Outcome: OutcomeOptedOut, Dialed: 1, EndedAt: tue10, CallbackAt: tue10.Add(time.Hour)}, store.ContactDoNotCall, time.Time{}},
		{"no answer after 1st: 30 min", def, Attempt{Outcome: OutcomeNoAnswer, Dialed: 1, EndedAt: tue10}, store.ContactPending, tue10.Add(30 * time.Minute)},
		{"busy after 2nd: 2 h", def, Attempt{Outcome: OutcomeBusy, Dialed: 2, EndedAt: tue10}, store.ContactPending, tue10.Add(2 * time.Hour)},
		{"failed after 3rd: exhausted", def, Attempt{Outcome: OutcomeFailed, Dialed: 3, EndedAt: tue10}, store.ContactExhausted, time.Time{}},
		{"voicemail is not retried by default", def, Attempt{Outcome: OutcomeVoicemail, Dialed: 1, EndedAt: tue10}, store.ContactExhausted, time.Time{}},
		{"interrupted is not retried by default", def, Attempt{Outcome: OutcomeInterrupted, Dialed: 1, EndedAt: tue10}, store.ContactExhausted, time.Time{}},
		{"voicemail retried when configured", withVoicemail, Attempt{Outcome: OutcomeVoicemail, Dialed: 1, EndedAt: tue10}, store.ContactPending, tue10.Add(10 * time.Minute)},
		{"busy not retried when not configured", withVoicemail, Attempt{Outcome: OutcomeBusy, Dialed: 1, EndedAt: tue10}, store.ContactExhausted, time.Time{}},
		{"the last backoff repeats", withVoicemail, Attempt{Outcome: OutcomeNoAnswer, Dialed: 4, EndedAt: tue10}, store.ContactPending, tue10.Add(10 * time.Minute)},
		{"backoff lands after hours: next morning", def, Attempt{Outcome: OutcomeNoAnswer, Dialed: 1, EndedAt: utc("2026-03-10 21:45")}, store.ContactPending, utc("2026-03-11 13:00")},
		{"backoff lands on the weekend: Monday", def, Attempt{Outcome: OutcomeBusy, Dialed: 2, EndedAt: fri17}, store.ContactPending, utc("2026-03-16 13:00")},
		{"no answer after 3rd of 4: next day", four, Attempt{Outcome: OutcomeNoAnswer, Dialed: 3, EndedAt: tue10}, store.ContactPending, tue10.Add(24 * time.Hour)},
		{"no answer after 4th of 4: exhausted", four, Attempt{Outcome: OutcomeNoAnswer, Dialed: 4, EndedAt: tue10}, store.ContactExhausted, time.Time{}},
		{"callback replaces the backoff", def, Attempt{Outcome: OutcomeCompleted, Dialed: 1, EndedAt: tue10, CallbackAt: utc("2026-03-12 15:00")}, store.ContactPending, utc("2026-03-12 15:00")},
		{"callback at night waits for the window", def, Attempt{Outcome: OutcomeNoAnswer, Dialed: 1, EndedAt: tue10, CallbackAt: utc("2026-03-11 02:00")}, store.ContactPending, utc("2026-03-11 13:00")},
		{"callback in the past: as soon as allowed", def, Attempt{Outcome: OutcomeCompleted, Dialed: 1, EndedAt: tue10, CallbackAt: tue10.Add(-time.Hour)}, store.ContactPending, tue10},
		{"callback with no attempts left", def, Attempt{Outcome: OutcomeCompleted, Dialed: 3, EndedAt: tue10, CallbackAt: tue10.Add(time.Hour)}, store.ContactExhausted, time.Time{}},
		{"cancelled before dialing: due again now", def, Attempt{Outcome: OutcomeCancelled, Dialed: 0, EndedAt: tue10}, store.ContactPending, tue10},
		{"cancelled after hours: next window", def, Attempt{Outcome: OutcomeCancelled, Dialed: 2, EndedAt: fri17.Add(time.Hour)}, store.ContactPending, utc("2026-03-16 13:00")},
		{"media lost is ours: retried even where failed is not", withVoicemail, Attempt{Outcome: OutcomeMediaLost, Dialed: 2, EndedAt: tue10}, store.ContactPending, tue10.Add(10 * time.Minute)},
		{"media lost: first backoff step, not the 2nd's", def, Attempt{Outcome: OutcomeMediaLost, Dialed: 2, EndedAt: tue10}, store.ContactPending, tue10.Add(30 * time.Minute)},
		{"media lost with no attempts left", def, Attempt{Outcome: OutcomeMediaLost, Dialed: 3, EndedAt: tue10}, store.ContactExhausted, time.Time{}},
		{"transferred is final", def, Attempt{Outcome: OutcomeTransferred, Dialed: 1, EndedAt: tue10}, store.ContactCompleted, time.Time{}},
	} {
		d := tc.p.Decide(tc.a, cal.window(ny))
		require.Equal(t, tc.status, d.Status, tc.name)
		require.True(t, tc.next.Equal(d.NextAttemptAt), "%s: next %s, want %s", tc.name, d.NextAttemptAt.UTC(), tc.next)
		require.Equal(t, tc.status != store.ContactPending, d.Final(), tc.name)
		require.NotEmpty(t, d.Reason, tc.name)
	}
}

func TestDecideExhaustsWhenTheCampaignWindowCloses(t *testing.T) {
	t.Parallel()
	ny := mustZone(t, "America/New_York")
	hours, err := ParseHours("09:00", "18:00", nil)
	require.NoError(t, err)
	cal := Calendar{Hours: hours, DefaultZone: ny, End: utc("2026-03-10 22:00")}
	def, err := PolicyFrom(store.RetryPolicy{})
	require.NoError(t, err)
	d := def.Decide(Attempt{Outcome: OutcomeNoAnswer, Dialed: 1, EndedAt: utc("2026-03-10 21:45")}, cal.window(ny))
	require.Equal(t, store.ContactExhausted, d.Status)
	require.Contains(t, d.Reason, "window")
}

// TestDecideWaitsForTheLawWhereTheNumberRings: a contact filed under New
// York whose number is in Los Angeles is retried at 09:00 New York only if
// it is 08:00 in Los Angeles too, so at 11:00 New York.
func TestDecideWaitsForTheLawWhereTheNumberRings(t *testing.T) {
	t.Parallel()
	w, err := newYorkCalendar(t, "09:00", "18:00", nil).ContactWindow("", "+14155550100")
	require.NoError(t, err)
	def, err := PolicyFrom(store.RetryPolicy{})
	require.NoError(t, err)
	d := def.Decide(Attempt{Outcome: OutcomeNoAnswer, Dialed: 1, EndedAt: utc("2026-03-10 21:45")}, w) // 17:45 EDT
	require.Equal(t, store.ContactPending, d.Status)
	require.Equal(t, utc("2026-03-11 15:00"), d.NextAttemptAt.UTC(), "11:00 EDT = 08:00 PDT")
}

func TestAttemptsUsed(t *testing.T) {
	t.Parallel()
	dialed := func(n int) store.AttemptMark { return store.AttemptMark{Attempt: n, Dialed: true} }
	cancelled := func(n int) store.AttemptMark { return store.AttemptMark{Attempt: n} }
	for _, tc := range []struct {
		name    string
		counter int
		marks   []store.AttemptMark
		want    int
	}{
		{"new contact", 0, nil, 0},
		{"counter written by the backend, no documents", 3, nil, 3},
		{"documents agree with the counter", 2, []store.AttemptMark{dialed(1), dialed(2)}, 2},
		{"cancelled attempts do not count", 3, []store.AttemptMark{cancelled(1), cancelled(2), cancelled(3)}, 0},
		{"counter and documents together", 2, []store.AttemptMark{dialed(3)}, 3},
		{"a dialed attempt whose outcome is not applied yet", 1, []store.AttemptMark{dialed(1), dialed(2)}, 2},
		{"queued next attempt", 1, []store.AttemptMark{dialed(1), cancelled(2)}, 1},
	} {
		require.Equal(t, tc.want, AttemptsUsed(tc.counter, tc.marks), tc.name)
	}
}
