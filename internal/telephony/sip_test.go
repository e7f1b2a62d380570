package telephony_test

import (
	"context"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/docshield/voice-worker/internal/telephony/sipphone"
	"github.com/docshield/voice-worker/internal/telephony/sipphone/siptest"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The outcome of each way a phone can answer, as LiveKit's SIP service
// really reports it through CreateSIPParticipant: the SIP dialer against
// the stack's livekit-sip and a SIP phone behind a trunk of the test's
// own, with digest authentication.
func TestSIPDialerOutcomesFromTheSIPService(t *testing.T) {
	line := siptest.Start(t, sipphone.Config{})
	cfg := line.Telephony(t)
	cfg.CallerID = "+15550109999"
	const ring = 2 * time.Second
	cfg.RingTimeout = ring
	rooms, err := telephony.NewRooms(cfg, nil)
	require.NoError(t, err)
	d, err := telephony.NewSIPDialer(cfg)
	require.NoError(t, err)
	cases := []struct {
		name     string
		script   sipphone.Script
		outcome  telephony.Outcome
		sentinel error
		code     int // the SIP status the dial reports
		answered int // the phone's final response to the INVITE
	}{
		{"busy", sipphone.Busy(), telephony.Busy, telephony.ErrBusy, 486, 486},
		{"busy everywhere", sipphone.Refuse(600, 0), telephony.Busy, telephony.ErrBusy, 600, 600},
		{"unavailable", sipphone.Unavailable(), telephony.NoAnswer, telephony.ErrNoAnswer, 480, 480},
		{"declined", sipphone.Declined(), telephony.Rejected, telephony.ErrRejected, 603, 603},
		{"forbidden", sipphone.Refuse(403, 0), telephony.Rejected, telephony.ErrRejected, 403, 403},
		{"not found", sipphone.Refuse(404, 0), telephony.Failed, telephony.ErrDialFailed, 404, 404},
		{"carrier error", sipphone.Refuse(503, 0), telephony.Failed, telephony.ErrDialFailed, 503, 503},
		// No SIP status: LiveKit cancels the INVITE at the ring timeout.
		{"rings out", sipphone.RingOut(), telephony.NoAnswer, telephony.ErrNoAnswer, 0, 487},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			number := "+1555010020" + string(rune('0'+i))
			require.NoError(t, line.Phone.Handle(number, tc.script))
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			room := newRoom(t, rooms)

			start := time.Now()
			_, err = d.Dial(ctx, telephony.DialRequest{Room: room, To: number})
			elapsed := time.Since(start)
			t.Logf("%s: %v (after %s)", tc.name, err, elapsed.Round(time.Millisecond))
			require.Equal(t, tc.outcome, telephony.OutcomeOf(err))
			require.ErrorIs(t, err, tc.sentinel)
			de, ok := err.(*telephony.DialError)
			require.True(t, ok, "%T", err)
			require.Equal(t, tc.code, de.SIPCode)

			call, err := line.Phone.WaitCall(ctx, number)
			require.NoError(t, err)
			rec := waitEnded(t, call)
			require.Equal(t, sipphone.AuthOK, rec.Auth, "the trunk authenticated")
			require.Equal(t, cfg.CallerID, rec.From, "the caller ID the dial asked for")
			require.Equal(t, tc.answered, rec.Status)
			if tc.answered == 487 {
				require.Equal(t, sipphone.PartyCaller, rec.HungUpBy, "LiveKit cancelled the INVITE")
				require.Equal(t, "cancel", rec.EndReason)
				require.GreaterOrEqual(t, rec.Ended.Sub(rec.Rang), ring-200*time.Millisecond, "it rang for the ring timeout")
			}
			// The SIP service's participant, there while it dialled, leaves
			// once the dial failed; LiveKit may see it go a moment later
			// (or, when the leave was lost, only at its own timeout).
			require.EventuallyWithT(t, func(c *assert.CollectT) {
				ids, err := rooms.Participants(ctx, room)
				assert.NoError(c, err)
				assert.Empty(c, ids, "nobody is left in the room")
			}, 45*time.Second, 100*time.Millisecond)
		})
	}
}

// An answered dial returns the leg as LiveKit names it: the identity the
// callee has in the room, its SIP call id. The identity asked for is
// honoured; a hang-up removes the callee and the phone gets BYE.
func TestSIPDialerAnswered(t *testing.T) {
	line := siptest.Start(t, sipphone.Config{})
	cfg := line.Telephony(t)
	rooms, err := telephony.NewRooms(cfg, nil)
	require.NoError(t, err)
	d, err := telephony.NewSIPDialer(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	room := newRoom(t, rooms)

	leg, err := d.Dial(ctx, telephony.DialRequest{Room: room, To: "+15550100301", Identity: "callee-301"})
	require.NoError(t, err)
	require.Equal(t, telephony.Answered, telephony.OutcomeOf(err))
	require.Equal(t, room, leg.Room)
	require.Equal(t, "callee-301", leg.Identity)
	require.NotEmpty(t, leg.ParticipantID)
	require.NotEmpty(t, leg.SIPCallID)
	in, err := rooms.HasParticipant(ctx, room, leg.Identity)
	require.NoError(t, err)
	require.True(t, in, "the callee is in the room under the leg's identity")

	call, err := line.Phone.WaitCall(ctx, "+15550100301")
	require.NoError(t, err)
	require.Equal(t, 200, call.Record().Status)
	hungUp := time.Now()
	require.NoError(t, rooms.Hangup(ctx, leg))
	rec := waitEnded(t, call)
	require.Equal(t, sipphone.PartyCaller, rec.HungUpBy)
	require.Equal(t, "bye", rec.EndReason)
	bye, ok := rec.FirstRequest(false, sip.BYE)
	require.True(t, ok, "the phone got BYE: %v", rec.Events)
	t.Logf("measured: hang-up to BYE at the phone: %s", bye.Sub(hungUp).Round(time.Millisecond))
}

func waitEnded(t *testing.T, c *sipphone.Call) sipphone.Record {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(60 * time.Second):
		t.Fatalf("the phone's call never ended: %+v", c.Record())
	}
	return c.Record()
}

// An operator's view of the trunk: LiveKit's record of it, never the
// password; an id LiveKit does not know is ErrTrunkNotFound.
func TestInspectTrunk(t *testing.T) {
	line := siptest.Start(t, sipphone.Config{})
	cfg := line.Telephony(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, err := telephony.InspectTrunk(ctx, cfg)
	require.NoError(t, err)
	require.Equal(t, line.Trunk.ID, tr.ID)
	require.Equal(t, line.Phone.Addr().String(), tr.Address)
	require.Equal(t, "UDP", tr.Transport)
	require.Equal(t, []string{line.Trunk.Number}, tr.Numbers)
	require.Equal(t, line.Trunk.Username, tr.AuthUsername)
	require.True(t, tr.HasPassword)

	cfg.SIPTrunkID = "ST_doesnotexist"
	_, err = telephony.InspectTrunk(ctx, cfg)
	require.ErrorIs(t, err, telephony.ErrTrunkNotFound)
	require.ErrorContains(t, err, "LIVEKIT_SIP_TRUNK_ID")

	cfg.APISecret = "not-the-secret-not-the-secret-not-the"
	_, err = telephony.InspectTrunk(ctx, cfg)
	require.ErrorIs(t, err, telephony.ErrBadCredentials)
}

// newRoom is a call's room for the test, deleted when it ends.
func newRoom(t *testing.T, rooms *telephony.Rooms) string {
	t.Helper()
	room, err := rooms.Create(context.Background(), testenv.UniqueName(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rooms.Delete(context.Background(), room) })
	return room
}
