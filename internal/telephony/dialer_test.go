package telephony

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/utils/xtwirp"
	"github.com/stretchr/testify/require"
	"github.com/twitchtv/twirp"
)

const (
	testKey    = "testkey"
	testSecret = "testsecret-0123456789abcdef0123456789"
)

// fakeSIP is LiveKit's SIP API as the SDK sees it over HTTP: the generated
// twirp server with LiveKit's own server options, so errors travel exactly
// as they do from a real server. It records each request and the grants
// of the token it came with.
type fakeSIP struct {
	livekit.SIP // other methods are not called

	mu        sync.Mutex
	creates   []*livekit.CreateSIPParticipantRequest
	transfers []*livekit.TransferSIPParticipantRequest
	grants    []*auth.ClaimGrants
	dialErr   error
	xferErr   error
}

func (f *fakeSIP) CreateSIPParticipant(ctx context.Context, in *livekit.CreateSIPParticipantRequest) (*livekit.SIPParticipantInfo, error) {
	f.record(ctx)
	f.mu.Lock()
	f.creates = append(f.creates, in)
	err := f.dialErr
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return &livekit.SIPParticipantInfo{ParticipantId: "PA_1", ParticipantIdentity: in.ParticipantIdentity, RoomName: in.RoomName, SipCallId: "SCL_1"}, nil
}

func (f *fakeSIP) TransferSIPParticipant(ctx context.Context, in *livekit.TransferSIPParticipantRequest) (*livekit.TransferSIPParticipantResponse, error) {
	f.record(ctx)
	f.mu.Lock()
	f.transfers = append(f.transfers, in)
	err := f.xferErr
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return &livekit.TransferSIPParticipantResponse{}, nil
}

// record verifies the bearer token with the secret, as LiveKit does.
func (f *fakeSIP) record(ctx context.Context) {
	h := xtwirp.GetHeaders(ctx)
	var grants *auth.ClaimGrants
	if v, err := auth.ParseAPIToken(strings.TrimPrefix(h.Get("Authorization"), "Bearer ")); err == nil {
		if _, g, err := v.Verify(testSecret); err == nil {
			grants = g
		}
	}
	f.mu.Lock()
	f.grants = append(f.grants, grants)
	f.mu.Unlock()
}

func startFakeSIP(t *testing.T) (*fakeSIP, Config) {
	t.Helper()
	f := &fakeSIP{}
	var opts []any
	for _, o := range xtwirp.DefaultServerOptions() {
		opts = append(opts, o)
	}
	mux := http.NewServeMux()
	xtwirp.RegisterServer(mux, livekit.NewSIPServer(f, opts...))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return f, Config{
		URL: srv.URL, APIKey: testKey, APISecret: testSecret,
		SIPTrunkID: "ST_trunk", CallerID: "+15550001111", CallerName: "DocShield",
		RingTimeout: 25 * time.Second, MaxCallDuration: 20 * time.Minute,
	}
}

func TestSIPDialerSendsTheRequestLiveKitExpects(t *testing.T) {
	f, cfg := startFakeSIP(t)
	d, err := NewSIPDialer(cfg)
	require.NoError(t, err)

	leg, err := d.Dial(context.Background(), DialRequest{
		AttemptID: "att-1", Room: "call-att-1", To: "+15557654321",
		Headers: map[string]string{"X-Attempt": "att-1"},
	})
	outcome := OutcomeOf(err)
	require.NoError(t, err)
	require.Equal(t, Answered, outcome)
	require.Equal(t, CallLeg{Room: "call-att-1", Identity: DefaultCalleeIdentity, ParticipantID: "PA_1", SIPCallID: "SCL_1"}, leg)

	require.Len(t, f.creates, 1)
	in := f.creates[0]
	require.Equal(t, "ST_trunk", in.SipTrunkId)
	require.Equal(t, "+15557654321", in.SipCallTo)
	require.Equal(t, "+15550001111", in.SipNumber, "caller ID")
	require.Equal(t, "call-att-1", in.RoomName)
	require.Equal(t, DefaultCalleeIdentity, in.ParticipantIdentity)
	require.Equal(t, map[string]string{AttemptAttribute: "att-1"}, in.ParticipantAttributes)
	require.Equal(t, map[string]string{"X-Attempt": "att-1"}, in.Headers)
	require.True(t, in.WaitUntilAnswered)
	require.False(t, in.PlayDialtone)
	require.Equal(t, 25*time.Second, in.RingingTimeout.AsDuration())
	require.Equal(t, 20*time.Minute, in.MaxCallDuration.AsDuration())
	require.NotNil(t, in.DisplayName)
	require.Equal(t, "DocShield", *in.DisplayName)
	require.NoError(t, in.Validate(), "LiveKit's own validation accepts the request")

	g := f.grants[0]
	require.NotNil(t, g, "the request carries a token signed with our secret")
	require.NotNil(t, g.SIP)
	require.True(t, g.SIP.Call, "the token grants SIP calls")
}

func TestSIPDialerOverridesAndDefaults(t *testing.T) {
	_, cfg := startFakeSIP(t)
	cfg.CallerName = ""
	cfg.RingTimeout = 0
	in, err := CreateSIPParticipantRequest(cfg, DialRequest{
		Room: "r", To: "+15557654321", Identity: "phone", CallerID: "+15559990000", RingTimeout: 5 * time.Second,
	})
	require.NoError(t, err)
	require.Equal(t, "+15559990000", in.SipNumber)
	require.Equal(t, "phone", in.ParticipantIdentity)
	require.Equal(t, 5*time.Second, in.RingingTimeout.AsDuration())
	require.Nil(t, in.DisplayName, "no name configured: LiveKit's default (the number)")
	require.Nil(t, in.ParticipantAttributes)

	in, err = CreateSIPParticipantRequest(cfg, DialRequest{Room: "r", To: "+15557654321"})
	require.NoError(t, err)
	require.Equal(t, DefaultRingTimeout, in.RingingTimeout.AsDuration())
}

func TestSIPDialerRejectsBadRequestsBeforeDialing(t *testing.T) {
	f, cfg := startFakeSIP(t)
	d, err := NewSIPDialer(cfg)
	require.NoError(t, err)
	for name, req := range map[string]DialRequest{
		"no room":          {To: "+15557654321"},
		"not E.164":        {Room: "r", To: "5557654321"},
		"bad caller ID":    {Room: "r", To: "+15557654321", CallerID: "anonymous"},
		"header injection": {Room: "r", To: "+15557654321", Headers: map[string]string{"X-A": "1\r\nTo: <sip:evil>"}},
		"bad header name":  {Room: "r", To: "+15557654321", Headers: map[string]string{"X A": "1"}},
		"negative ring":    {Room: "r", To: "+15557654321", RingTimeout: -time.Second},
	} {
		_, err := d.Dial(context.Background(), req)
		outcome := OutcomeOf(err)
		require.Equal(t, Failed, outcome, name)
		require.ErrorIs(t, err, ErrDialFailed, name)
		require.NotContains(t, err.Error(), "5557654321", "%s: errors do not echo the number", name)
	}
	require.Empty(t, f.creates, "nothing was dialed")
}

func TestNewSIPDialerNeedsATrunk(t *testing.T) {
	_, cfg := startFakeSIP(t)
	cfg.SIPTrunkID = ""
	_, err := NewSIPDialer(cfg)
	require.ErrorContains(t, err, "SIPTrunkID")
}

// The outcomes travel through the real SDK client and LiveKit's twirp
// error encoding; only the SIP service behind the API is faked.
func TestSIPDialerOutcomesOverTheWire(t *testing.T) {
	f, cfg := startFakeSIP(t)
	d, err := NewSIPDialer(cfg)
	require.NoError(t, err)
	cases := []struct {
		err      error
		outcome  Outcome
		sentinel error
		code     int
	}{
		{fmt.Errorf("INVITE failed: %w", &livekit.SIPStatus{Code: 486, Status: "Busy Here"}), Busy, ErrBusy, 486},
		{fmt.Errorf("INVITE failed: %w", &livekit.SIPStatus{Code: 603, Status: "Decline"}), Rejected, ErrRejected, 603},
		{fmt.Errorf("sip request timeout: %w", &livekit.SIPStatus{Code: 408, Status: "Request Timeout"}), NoAnswer, ErrNoAnswer, 408},
		{fmt.Errorf("INVITE failed: %w", &livekit.SIPStatus{Code: 480}), NoAnswer, ErrNoAnswer, 480},
		{fmt.Errorf("INVITE failed: %w", &livekit.SIPStatus{Code: 503, Status: "Service Unavailable"}), Failed, ErrDialFailed, 503},
		{twirp.NewError(twirp.NotFound, "requested sip trunk does not exist"), Failed, ErrDialFailed, 0},
	}
	for _, tc := range cases {
		f.mu.Lock()
		f.dialErr = tc.err
		f.mu.Unlock()
		_, err := d.Dial(context.Background(), DialRequest{Room: "r", To: "+15557654321"})
		outcome := OutcomeOf(err)
		require.Equal(t, tc.outcome, outcome, tc.err.Error())
		require.ErrorIs(t, err, tc.sentinel)
		de, ok := err.(*DialError)
		require.True(t, ok)
		require.Equal(t, tc.code, de.SIPCode, tc.err.Error())
	}
}

func TestTransferRequest(t *testing.T) {
	f, cfg := startFakeSIP(t)
	d, err := NewSIPDialer(cfg)
	require.NoError(t, err)
	leg := CallLeg{Room: "call-att-1", Identity: DefaultCalleeIdentity}

	require.NoError(t, d.Transfer(context.Background(), leg, TransferRequest{To: "+15551230000", PlayDialtone: true, Headers: map[string]string{"X-Reason": "human"}}))
	require.Len(t, f.transfers, 1)
	in := f.transfers[0]
	require.Equal(t, "call-att-1", in.RoomName)
	require.Equal(t, DefaultCalleeIdentity, in.ParticipantIdentity)
	require.Equal(t, "tel:+15551230000", in.TransferTo, "a bare number becomes a tel: URI")
	require.True(t, in.PlayDialtone)
	require.Equal(t, map[string]string{"X-Reason": "human"}, in.Headers)
	require.Equal(t, 25*time.Second, in.RingingTimeout.AsDuration())
	require.True(t, f.grants[0].SIP.Call)
	require.True(t, f.grants[0].Video.RoomAdmin)
	require.Equal(t, "call-att-1", f.grants[0].Video.Room)

	for _, to := range []string{"sip:desk@pbx.example.com", "tel:+15551230000"} {
		in, err := TransferSIPParticipantRequest(cfg, leg, TransferRequest{To: to})
		require.NoError(t, err)
		require.Equal(t, to, in.TransferTo)
	}
	for _, to := range []string{"", "5551230000", "tel:555", "sip:nobody", "http://x"} {
		_, err := TransferSIPParticipantRequest(cfg, leg, TransferRequest{To: to})
		require.Error(t, err, to)
	}
	_, err = TransferSIPParticipantRequest(cfg, CallLeg{Room: "r"}, TransferRequest{To: "+15551230000"})
	require.Error(t, err, "a leg without identity")

	f.mu.Lock()
	f.xferErr = &livekit.SIPTransferError{Reason: livekit.SIPTransferReason_STR_REJECTED, SipStatus: &livekit.SIPStatus{Code: 486, Status: "Busy Here"}}
	f.mu.Unlock()
	err = d.Transfer(context.Background(), leg, TransferRequest{To: "+15551230000"})
	require.ErrorIs(t, err, ErrTransferFailed)
	te, ok := err.(*TransferError)
	require.True(t, ok)
	require.Equal(t, 486, te.SIPCode)
	require.Equal(t, "STR_REJECTED", te.Reason)
}
