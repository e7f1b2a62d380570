package main

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/telephony/sipphone"
	"github.com/docshield/voice-worker/internal/telephony/sipphone/siptest"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/stretchr/testify/require"
)

// `worker verify sip` against the stack: LiveKit's record of the trunk (a
// trunk of the test's own, to a SIP phone), and with --call a real test
// INVITE through LiveKit's SIP service that the phone answers and the
// worker hangs up; a busy line, calling hours and a trunk LiveKit does not
// know each say so.
func TestVerifySIP(t *testing.T) {
	t.Parallel()
	line := siptest.Start(t, sipphone.Config{})
	lk := testenv.LiveKit(t)
	env := map[string]string{
		"LIVEKIT_URL": lk.URL, "LIVEKIT_API_KEY": lk.APIKey, "LIVEKIT_API_SECRET": lk.APISecret,
		"LIVEKIT_SIP_TRUNK_ID": line.Trunk.ID, "CALLER_ID": line.Trunk.Number,
	}
	res := runBin(t, env, "verify", "sip")
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Regexp(t, `(?m)^sip\s+trunk\s+OK\s+`+line.Trunk.ID+` .*exists`, res.stdout)
	require.Regexp(t, `(?m)^sip\s+address\s+OK\s+INVITEs go to `+line.Phone.Addr().String()+` over UDP`, res.stdout)
	require.Regexp(t, `(?m)^sip\s+auth\s+OK\s+digest credentials set`, res.stdout)
	require.Regexp(t, `(?m)^sip\s+numbers\s+OK\s+`+regexp.QuoteMeta(logging.MaskPhone(line.Trunk.Number)), res.stdout)
	require.NotContains(t, res.stdout, line.Trunk.Password)
	require.NotContains(t, res.stdout, line.Trunk.Number, "numbers are masked")
	require.NotContains(t, res.stdout, "test call", "no call unless asked for")
	require.Empty(t, line.Phone.Calls())

	// A test call: the phone rings, answers, and is hung up on.
	day := testenv.DaytimeNumber(t)
	res = runBin(t, env, "verify", "sip", "--call", day)
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	t.Logf("worker verify sip --call:\n%s", res.stdout)
	require.Regexp(t, `(?m)^sip\s+test call\s+OK\s+.*answered after .*; hung up`, res.stdout)
	require.NotContains(t, res.stdout, day)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := line.Phone.WaitCall(ctx, day)
	require.NoError(t, err)
	<-c.Done()
	rec := c.Record()
	require.Equal(t, sipphone.AuthOK, rec.Auth)
	require.Equal(t, line.Trunk.Number, rec.From)
	require.Equal(t, 200, rec.Status)
	require.Equal(t, sipphone.PartyCaller, rec.HungUpBy, "the worker hung up")

	// A busy line: the trunk works, the phone did not answer.
	require.NoError(t, line.Phone.Handle(day, sipphone.Busy()))
	res = runBin(t, env, "verify", "sip", "--call", day)
	require.Equal(t, 0, res.code, "a warning: "+res.stdout+res.stderr)
	require.Regexp(t, `(?m)^sip\s+test call\s+WARN\s+.*not answered.*SIP 486`, res.stdout)

	// Calling hours hold for a test call too: nothing rings at night.
	night := testenv.NighttimeNumber(t)
	res = runBin(t, env, "verify", "sip", "--call", night)
	require.Equal(t, 1, res.code, res.stdout+res.stderr)
	require.Regexp(t, `(?m)^sip\s+test call\s+FAIL\s+.*not dialed: outside calling hours`, res.stdout)
	require.Len(t, line.Phone.Calls(), 2, "the night-time number was never dialed")

	res = runBin(t, env, "verify", "--call", day, "redis")
	require.Equal(t, 2, res.code)
	require.Contains(t, res.stderr, "--call goes with the sip target only")
	res = runBin(t, env, "verify", "--call", "5551234", "sip")
	require.Equal(t, 2, res.code)

	env["LIVEKIT_SIP_TRUNK_ID"] = "ST_notatrunk"
	res = runBin(t, env, "verify", "sip")
	require.Equal(t, 1, res.code)
	require.Regexp(t, `(?m)^sip\s+trunk\s+FAIL\s+.*no outbound SIP trunk with this id.*LIVEKIT_SIP_TRUNK_ID`, res.stdout)

	env["DIALER"] = "sim"
	res = runBin(t, env, "verify", "sip")
	require.Equal(t, 1, res.code)
	require.Regexp(t, `(?m)^sip\s+config\s+FAIL`, res.stdout)
}
