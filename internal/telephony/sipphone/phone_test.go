package sipphone

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/telephony/calleesim"
	"github.com/docshield/voice-worker/internal/telephony/heard"
	"github.com/emiago/diago/media"
	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/require"
)

const number = "+15550100001"

// mismatches counts the samples of want that got differs from, got read
// at pos (missing samples count too).
func mismatches(got []int16, pos int, want []int16) int {
	n := 0
	for i, w := range want {
		if pos+i >= len(got) || got[pos+i] != w {
			n++
		}
	}
	return n
}

// The phone answers a livekit-sip-like offer with PCMU, takes its turn
// after the caller's speech, and both directions carry exactly the audio
// sent (G.711 companding aside) at the stream positions it was sent at.
func TestTalkCarriesAudioBothWays(t *testing.T) {
	ctx := testCtx(t)
	speech, err := calleesim.Speech(ctx, "Hello, this is the clinic calling about your appointment.", SampleRate)
	require.NoError(t, err)
	reply := calleesim.Tone(600, 600*time.Millisecond, SampleRate, 0.3)
	p := newPhone(t, Config{})
	require.NoError(t, p.Handle(number, Talk(reply)))

	c := newCaller(t)
	l, err := c.dial(ctx, t, p, number, dialOpts{})
	require.NoError(t, err)
	call, err := p.WaitCall(ctx, number)
	require.NoError(t, err)
	require.Equal(t, PCMU, l.codec, "livekit-sip offers G722 first; the phone answers PCMU")

	sent := time.Now()
	l.say(ctx, t, speech)
	_, err = l.heard.WaitQuiet(ctx, sent, 300*time.Millisecond)
	require.NoError(t, err, "the caller hears the phone's reply")
	rec, err := call.Wait(ctx, func(r Record) bool { return len(r.Said) == 1 && !r.Said[0].End.IsZero() })
	require.NoError(t, err)

	// Caller → phone: the speech sits where the caller put it, intact.
	mine := l.mouth.utterances()
	require.Len(t, mine, 1)
	heard := call.Heard().Audio()
	require.Zero(t, mismatches(heard, mine[0].StartPos, PCMU.Companded(speech)), "the phone heard the caller's speech sample for sample")
	q := call.Heard().Quality()
	require.Empty(t, q.Gaps, "no dropouts on loopback")
	require.Zero(t, q.Late)
	require.Zero(t, q.Clipped)
	require.Greater(t, q.SpeechRMS, DefaultSpeechThreshold)

	// Phone → caller: the reply arrives intact, and only after the speech.
	said := rec.Said[0]
	require.Equal(t, len(reply), said.EndPos-said.StartPos)
	require.Zero(t, mismatches(l.heard.Audio(), said.StartPos, PCMU.Companded(reply)), "the caller heard the reply sample for sample")
	require.True(t, said.Start.After(mine[0].End), "the phone waited for the caller's turn to end")
	level := calleesim.ToneLevel(l.heard.Audio()[said.StartPos:said.EndPos], 600, SampleRate)
	require.InDelta(t, 0.3*32767/1.4142, level, 300, "the reply's level survives G.711")

	// The caller hangs up.
	require.NoError(t, l.d.Hangup(ctx))
	rec = waitDone(t, call)
	require.NoError(t, call.Err())
	require.Equal(t, number, rec.Number)
	require.Equal(t, "UDP", rec.Transport)
	require.Equal(t, AuthNone, rec.Auth)
	require.Equal(t, PCMU, rec.Codec)
	require.Equal(t, []int{100, 200}, rec.Responses())
	require.Equal(t, 200, rec.Status)
	require.Equal(t, PartyCaller, rec.HungUpBy)
	require.Equal(t, "bye", rec.EndReason)
	require.False(t, rec.Answered.IsZero())
	require.True(t, rec.Rang.IsZero(), "a script without Ring answers at once")
	require.False(t, rec.Ended.Before(rec.Answered))
	require.Contains(t, rec.Events, Event{At: byeAt(t, rec), Method: string(sip.BYE)})
}

// byeAt finds when the phone received BYE.
func byeAt(t *testing.T, r Record) time.Time {
	t.Helper()
	at, ok := r.FirstRequest(false, sip.BYE)
	if !ok {
		t.Fatalf("no BYE received in %v", r.Events)
	}
	return at
}

// The phone challenges INVITEs as a carrier does, with 401 or 407, and
// answers only the right credentials.
func TestDigestAuthentication(t *testing.T) {
	for _, proxy := range []bool{false, true} {
		challenge := 401
		if proxy {
			challenge = 407
		}
		t.Run(strconv.Itoa(challenge), func(t *testing.T) {
			ctx := testCtx(t)
			p := newPhone(t, Config{Auth: &Auth{Username: "trunk", Password: "s3cret", Proxy: proxy}})
			c := newCaller(t)

			l, err := c.dial(ctx, t, p, "+15550100001", dialOpts{user: "trunk", password: "s3cret"})
			require.NoError(t, err, "the right credentials are answered")
			ok, err := p.WaitCall(ctx, "+15550100001")
			require.NoError(t, err)
			require.NoError(t, l.d.Hangup(ctx))
			rec := waitDone(t, ok)
			require.Equal(t, AuthOK, rec.Auth)
			require.Equal(t, []int{challenge, 100, 200}, rec.Responses(), "challenged, then answered: one call: %v", rec.Events)
			require.Equal(t, 2, count(rec, false, sip.INVITE))

			_, err = c.dial(ctx, t, p, "+15550100002", dialOpts{user: "trunk", password: "wrong"})
			require.Equal(t, 403, status(err), "a wrong password is refused")
			bad, err := p.WaitCall(ctx, "+15550100002")
			require.NoError(t, err)
			rec = waitDone(t, bad)
			require.Equal(t, AuthFailed, rec.Auth)
			require.Equal(t, []int{challenge, 403}, rec.Responses())
			require.Equal(t, PartyPhone, rec.HungUpBy)
			require.Equal(t, "auth failed", rec.EndReason)

			_, err = c.dial(ctx, t, p, "+15550100003", dialOpts{})
			require.Equal(t, challenge, status(err), "a caller without credentials gets the challenge")
			none, err := p.WaitCall(ctx, "+15550100003")
			require.NoError(t, err)
			rec, err = none.Wait(ctx, func(r Record) bool { return len(r.Responses()) > 0 })
			require.NoError(t, err)
			require.Equal(t, AuthChallenged, rec.Auth)
			require.Equal(t, []int{challenge}, rec.Responses())
			require.Zero(t, rec.Status, "a challenge is not the call's final answer")
		})
	}
}

// count counts the requests of method m the phone received (or sent).
func count(r Record, sent bool, m sip.RequestMethod) int {
	n := 0
	for _, e := range r.Events {
		if e.Sent == sent && e.Method == string(m) && e.Status == 0 {
			n++
		}
	}
	return n
}

// Busy, declined, unavailable and any other final status reach the caller
// as the SIP status a carrier would send, after ringing.
func TestRefusals(t *testing.T) {
	ctx := testCtx(t)
	p := newPhone(t, Config{})
	c := newCaller(t)
	cases := []struct {
		number string
		script Script
		status int
	}{
		{"+15550100011", Busy(), 486},
		{"+15550100012", Declined(), 603},
		{"+15550100013", Unavailable(), 480},
		{"+15550100014", Refuse(404, 0), 404},
	}
	for _, tc := range cases {
		require.NoError(t, p.Handle(tc.number, tc.script))
		rang := false
		_, err := c.dial(ctx, t, p, tc.number, dialOpts{onResponse: func(r *sip.Response) { rang = rang || r.StatusCode == 180 }})
		require.Equal(t, tc.status, status(err), tc.number)
		call, err := p.WaitCall(ctx, tc.number)
		require.NoError(t, err)
		rec := waitDone(t, call)
		want := []int{100, 180, tc.status}
		if tc.script.Ring == 0 {
			want = []int{100, tc.status}
		}
		require.Equal(t, want, rec.Responses(), tc.number)
		require.Equal(t, tc.script.Ring > 0, rang, "the caller heard ringing if the phone rang")
		require.Equal(t, tc.status, rec.Status)
		require.Equal(t, PartyPhone, rec.HungUpBy)
		require.Equal(t, "refused", rec.EndReason)
		require.True(t, rec.Answered.IsZero())
	}
}

// A phone nobody picks up rings until the caller gives up: the caller's
// CANCEL is answered 200 and the INVITE 487.
func TestRingsUntilTheCallerCancels(t *testing.T) {
	ctx := testCtx(t)
	p := newPhone(t, Config{Default: RingOut()})
	c := newCaller(t)
	ringCtx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond) // the caller's ring timeout
	defer cancel()
	rang := false
	_, err := c.dial(ringCtx, t, p, number, dialOpts{onResponse: func(r *sip.Response) { rang = rang || r.StatusCode == 180 }})
	require.Error(t, err)
	require.True(t, rang, "the caller heard ringing")
	call, err := p.WaitCall(ctx, number)
	require.NoError(t, err)
	rec := waitDone(t, call)
	require.Equal(t, []int{100, 180, 487}, rec.Responses())
	require.Equal(t, 487, rec.Status)
	require.Equal(t, PartyCaller, rec.HungUpBy)
	require.Equal(t, "cancel", rec.EndReason)
	require.Equal(t, 1, count(rec, false, sip.CANCEL))
	require.False(t, rec.Rang.IsZero())
	require.True(t, rec.Answered.IsZero())
	require.GreaterOrEqual(t, rec.Ended.Sub(rec.Rang), time.Second, "it rang until the caller's timeout")
}

// The phone hangs up while the caller is still talking.
func TestHangsUpMidSentence(t *testing.T) {
	ctx := testCtx(t)
	p := newPhone(t, Config{Default: HangUpMidSentence(300 * time.Millisecond)})
	c := newCaller(t)
	l, err := c.dial(ctx, t, p, number, dialOpts{})
	require.NoError(t, err)
	call, err := p.WaitCall(ctx, number)
	require.NoError(t, err)
	talk := calleesim.Tone(440, 10*time.Second, SampleRate, 0.3)
	l.mouth.say(talk)
	waitClosed(t, l.hungUp(), "the phone's BYE")
	rec := waitDone(t, call)
	require.NoError(t, call.Err())
	require.Equal(t, PartyPhone, rec.HungUpBy)
	require.Equal(t, "script", rec.EndReason)
	require.Equal(t, 1, count(rec, true, sip.BYE))
	require.Zero(t, count(rec, false, sip.BYE))
	spans := call.Heard().Spans(200 * time.Millisecond)
	require.Len(t, spans, 1)
	require.GreaterOrEqual(t, spans[0].Duration(), 200*time.Millisecond, "it heard the caller start")
	require.Less(t, spans[0].Duration(), 10*time.Second, "and hung up before the caller finished")
}

// CutMedia stops the phone's stream mid-call while the call stays up: the
// caller hears the phone's packets, then none, and no BYE.
func TestCutMediaStopsTheStream(t *testing.T) {
	ctx := testCtx(t)
	p := newPhone(t, Config{Default: Script{Steps: []Step{
		Say(calleesim.Tone(600, 300*time.Millisecond, SampleRate, 0.3)), CutMedia(),
	}}})
	l, err := newCaller(t).dial(ctx, t, p, number, dialOpts{})
	require.NoError(t, err)
	call, err := p.WaitCall(ctx, number)
	require.NoError(t, err)
	rec, err := call.Wait(ctx, func(r Record) bool { return len(r.Said) == 1 && !r.Said[0].End.IsZero() })
	require.NoError(t, err)
	err = l.heard.WaitFrames(ctx, func(f []heard.Frame) bool {
		return len(f) > 0 && f[len(f)-1].Pos+f[len(f)-1].Samples >= rec.Said[0].EndPos
	})
	require.NoError(t, err, "the caller heard the phone speak")
	before := len(l.heard.Frames())
	quiet, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	err = l.heard.WaitFrames(quiet, func(f []heard.Frame) bool { return len(f) > before+1 })
	require.ErrorIs(t, err, context.DeadlineExceeded, "no packets after the cut (one may have been in flight)")
	require.Zero(t, call.Record().HungUpBy, "the call is still up")
	require.NoError(t, l.d.Hangup(ctx))
	rec = waitDone(t, call)
	require.Equal(t, PartyCaller, rec.HungUpBy)
}

// An IVR prompt, then digits as RFC 4733 telephone-events, recorded with
// their times.
func TestIVRReceivesDigits(t *testing.T) {
	ctx := testCtx(t)
	prompt, err := calleesim.Speech(ctx, "Press 2 for the front desk.", SampleRate)
	require.NoError(t, err)
	p := newPhone(t, Config{Default: IVR(prompt, 2)})
	c := newCaller(t)
	start := time.Now()
	l, err := c.dial(ctx, t, p, number, dialOpts{})
	require.NoError(t, err)
	call, err := p.WaitCall(ctx, number)
	require.NoError(t, err)
	_, err = l.heard.WaitQuiet(ctx, start, 300*time.Millisecond)
	require.NoError(t, err, "the caller heard the prompt")
	// A pause between the prompt's words can pass for its end at the
	// caller on a busy machine: the phone's own mark says when it ended.
	_, err = call.Wait(ctx, func(r Record) bool { _, ok := r.Mark(MarkPromptEnd); return ok })
	require.NoError(t, err, "the phone finished its prompt")
	require.NoError(t, l.dtmf.WriteDTMF('2'))
	require.NoError(t, l.dtmf.WriteDTMF('#'))
	rec, err := call.Wait(ctx, func(r Record) bool { _, ok := r.Mark(MarkDigits); return ok })
	require.NoError(t, err)
	require.Equal(t, "2#", rec.Keys())
	promptEnd, _ := rec.Mark(MarkPromptEnd)
	for _, d := range rec.Digits {
		require.True(t, d.At.After(promptEnd), "digits came after the prompt")
		require.False(t, d.End.Before(d.At))
		require.Equal(t, 100*time.Millisecond, d.Duration, "diago sends 800-sample events")
	}
	require.Empty(t, call.Heard().Quality().Gaps, "telephone-events are not audio")
}

// A REFER is accepted (202), its progress reported by NOTIFY (100, then
// the final status), and after a completed transfer the phone ends its leg.
func TestTransfer(t *testing.T) {
	refer := func(t *testing.T, s Script, target string) (*caller, *leg, *Call, int) {
		ctx := testCtx(t)
		p := newPhone(t, Config{Default: s})
		c := newCaller(t)
		l, err := c.dial(ctx, t, p, number, dialOpts{})
		require.NoError(t, err)
		call, err := p.WaitCall(ctx, number)
		require.NoError(t, err)
		code, err := l.refer(ctx, target)
		require.NoError(t, err)
		return c, l, call, code
	}
	t.Run("completed", func(t *testing.T) {
		c, l, call, code := refer(t, Script{}, "tel:+15551230000")
		require.Equal(t, 202, code)
		waitClosed(t, l.hungUp(), "the phone's BYE after the transfer")
		rec := waitDone(t, call)
		require.Len(t, rec.Transfers, 1)
		require.Equal(t, "tel:+15551230000", rec.Transfers[0].URI())
		require.Equal(t, 200, rec.Transfers[0].Status)
		require.Equal(t, []int{100, 200}, c.notified())
		require.Equal(t, PartyPhone, rec.HungUpBy)
		require.Equal(t, "transferred", rec.EndReason)
		require.Equal(t, 2, count(rec, true, sip.NOTIFY))
		require.Equal(t, 1, count(rec, true, sip.BYE))
	})
	t.Run("target busy", func(t *testing.T) {
		c, l, call, code := refer(t, Script{Transfer: Transfer{Result: 486}}, "<sip:desk@pbx.example.com>")
		require.Equal(t, 202, code)
		ctx := testCtx(t)
		rec, err := call.Wait(ctx, func(r Record) bool { return len(r.Transfers) == 1 && r.Transfers[0].Status != 0 })
		require.NoError(t, err)
		require.Equal(t, 486, rec.Transfers[0].Status)
		require.Equal(t, "sip:desk@pbx.example.com", rec.Transfers[0].URI())
		require.Equal(t, []int{100, 486}, c.notified())
		require.NoError(t, l.d.Context().Err(), "a failed transfer leaves the call up")
		require.NoError(t, l.d.Hangup(ctx))
		require.Equal(t, PartyCaller, waitDone(t, call).HungUpBy)
	})
	t.Run("refused", func(t *testing.T) {
		c, l, call, code := refer(t, Script{Transfer: Transfer{Refuse: 403}}, "tel:+15551230000")
		require.Equal(t, 403, code)
		require.Empty(t, c.notified())
		rec := call.Record()
		require.Equal(t, 403, rec.Transfers[0].Status)
		require.NoError(t, l.d.Context().Err())
	})
}

// A call that goes on too long is hung up by the phone.
func TestHangsUpAtMaxCall(t *testing.T) {
	ctx := testCtx(t)
	p := newPhone(t, Config{MaxCall: 500 * time.Millisecond})
	l, err := newCaller(t).dial(ctx, t, p, number, dialOpts{})
	require.NoError(t, err)
	call, err := p.WaitCall(ctx, number)
	require.NoError(t, err)
	waitClosed(t, l.hungUp(), "the phone's BYE")
	rec := waitDone(t, call)
	require.Equal(t, PartyPhone, rec.HungUpBy)
	require.Equal(t, "max call", rec.EndReason)
	require.GreaterOrEqual(t, rec.Ended.Sub(rec.Answered), 500*time.Millisecond)
}

// Closing the phone hangs up answered calls with BYE and refuses ringing
// ones with 480.
func TestCloseEndsCalls(t *testing.T) {
	ctx := testCtx(t)
	p := newPhone(t, Config{})
	require.NoError(t, p.Handle("+15550100002", RingOut()))
	c := newCaller(t)
	l, err := c.dial(ctx, t, p, number, dialOpts{})
	require.NoError(t, err)
	answered, err := p.WaitCall(ctx, number)
	require.NoError(t, err)
	refused := make(chan error, 1)
	go func() {
		_, err := c.dial(ctx, t, p, "+15550100002", dialOpts{})
		refused <- err
	}()
	ringing, err := p.WaitCall(ctx, "+15550100002")
	require.NoError(t, err)
	_, err = ringing.Wait(ctx, func(r Record) bool { return !r.Rang.IsZero() })
	require.NoError(t, err)

	p.Close()
	waitClosed(t, l.hungUp(), "BYE on close")
	require.Equal(t, 480, status(<-refused))
	rec := answered.Record()
	require.Equal(t, PartyPhone, rec.HungUpBy)
	require.Equal(t, "phone closed", rec.EndReason)
	rec = ringing.Record()
	require.Equal(t, 480, rec.Status)
	require.Equal(t, "phone closed", rec.EndReason)
}

// SIP over TCP, as a trunk with transport=tcp uses.
func TestTCP(t *testing.T) {
	ctx := testCtx(t)
	p := newPhone(t, Config{TCP: true})
	l, err := newCaller(t).dial(ctx, t, p, number, dialOpts{tcp: true})
	require.NoError(t, err)
	call, err := p.WaitCall(ctx, number)
	require.NoError(t, err)
	require.NoError(t, l.d.Hangup(ctx))
	rec := waitDone(t, call)
	require.Equal(t, "TCP", rec.Transport)
	require.Equal(t, PartyCaller, rec.HungUpBy)
}

// A script can answer A-law; a caller that offers neither law the script
// wants is refused with 488.
func TestCodecs(t *testing.T) {
	ctx := testCtx(t)
	tone := calleesim.Tone(600, 400*time.Millisecond, SampleRate, 0.3)
	p := newPhone(t, Config{Default: Script{Codec: PCMA, Steps: []Step{Say(tone)}}})
	require.NoError(t, p.Handle("+15550100002", Script{}))
	l, err := newCaller(t).dial(ctx, t, p, number, dialOpts{})
	require.NoError(t, err)
	call, err := p.WaitCall(ctx, number)
	require.NoError(t, err)
	require.Equal(t, PCMA, l.codec)
	rec, err := call.Wait(ctx, func(r Record) bool { return len(r.Said) == 1 && !r.Said[0].End.IsZero() })
	require.NoError(t, err)
	require.Equal(t, PCMA, rec.Codec)
	err = l.heard.WaitFrames(ctx, func(f []heard.Frame) bool {
		return len(f) > 0 && f[len(f)-1].Pos >= rec.Said[0].EndPos
	})
	require.NoError(t, err)
	require.Zero(t, mismatches(l.heard.Audio(), rec.Said[0].StartPos, PCMA.Companded(tone)), "the caller heard A-law audio intact")

	pcmaOnly := newCaller(t, media.CodecAudioAlaw, media.CodecTelephoneEvent8000)
	_, err = pcmaOnly.dial(ctx, t, p, "+15550100002", dialOpts{})
	require.Equal(t, 488, status(err), "%v", err)
	bad, err := p.WaitCall(ctx, "+15550100002")
	require.NoError(t, err)
	rec = waitDone(t, bad)
	require.Equal(t, 488, rec.Status)
	require.Equal(t, "no common codec", rec.EndReason)
}

// A stall in the caller's stream shows as a dropout at the right place.
func TestRecordsDropouts(t *testing.T) {
	ctx := testCtx(t)
	p := newPhone(t, Config{})
	l, err := newCaller(t).dial(ctx, t, p, number, dialOpts{})
	require.NoError(t, err)
	call, err := p.WaitCall(ctx, number)
	require.NoError(t, err)
	rec := call.Heard()
	err = rec.WaitFrames(ctx, func(f []heard.Frame) bool { return len(f) >= 5 })
	require.NoError(t, err)
	l.med.RTPPacketWriter.DelayTimestamp(5 * frameSamples) // five packets that never come
	err = rec.WaitFrames(ctx, func(f []heard.Frame) bool {
		// A gap shows once the packet after it is placed.
		for i := 1; i < len(f); i++ {
			if f[i].Pos > f[i-1].Pos+f[i-1].Samples {
				return true
			}
		}
		return false
	})
	require.NoError(t, err)
	q := rec.Quality()
	require.Len(t, q.Gaps, 1)
	require.Equal(t, 5*frameSamples, q.Gaps[0].Samples)
	require.Equal(t, 100*time.Millisecond, q.Lost)
}

// A long-running phone remembers only its last KeepCalls ended calls.
func TestForgetsOldCalls(t *testing.T) {
	ctx := testCtx(t)
	p := newPhone(t, Config{Default: Refuse(486, 0), KeepCalls: 2})
	c := newCaller(t)
	for i := range 4 {
		_, err := c.dial(ctx, t, p, "+1555010002"+strconv.Itoa(i), dialOpts{})
		require.Equal(t, 486, status(err))
		call, err := p.WaitCall(ctx, "+1555010002"+strconv.Itoa(i))
		require.NoError(t, err)
		waitDone(t, call)
	}
	calls := p.Calls()
	require.Len(t, calls, 2)
	require.Equal(t, "+15550100022", calls[0].Record().Number)
	require.Equal(t, "+15550100023", calls[1].Record().Number)
}
