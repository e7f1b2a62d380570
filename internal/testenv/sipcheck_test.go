package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/livekit/protocol/livekit"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The SIP leg runs for real in the stack: CreateSIPParticipant makes
// LiveKit's SIP service dial a trunk made with NewOutboundTrunk, the
// phone's digest challenge is answered with the trunk's credentials, and
// the answered callee joins the room. Hanging up the room reaches the
// phone as a BYE.
func TestSIPLegThroughTheStack(t *testing.T) {
	lk := testenv.LiveKit(t)
	phone := startCheckPhone(t)
	trunk := testenv.NewOutboundTrunk(t, phone.addr)
	phone.serve(t, trunk.Username, trunk.Password)

	room := testenv.UniqueName(t)
	rooms := lk.RoomClient()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	_, err := rooms.CreateRoom(ctx, &livekit.CreateRoomRequest{Name: room})
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = rooms.DeleteRoom(context.Background(), &livekit.DeleteRoomRequest{Room: room})
	})

	const callee = "+15550123456"
	info, err := lk.SIPClient().CreateSIPParticipant(ctx, &livekit.CreateSIPParticipantRequest{
		SipTrunkId:          trunk.ID,
		SipCallTo:           callee,
		RoomName:            room,
		ParticipantIdentity: "sip_callee",
		WaitUntilAnswered:   true,
		RingingTimeout:      durationpb.New(30 * time.Second),
	})
	require.NoError(t, err, "CreateSIPParticipant; livekit-sip log:\n%s", sipServiceLog(t))
	require.Equal(t, "sip_callee", info.GetParticipantIdentity())
	require.NotEmpty(t, info.GetSipCallId())

	invites := phone.seen()
	require.GreaterOrEqual(t, len(invites), 2, "want a challenged INVITE, then an authorised one")
	require.False(t, invites[0].authorised, "the first INVITE carries no credentials: %+v", invites[0])
	last := invites[len(invites)-1]
	require.True(t, last.authorised, "the INVITE after the 401 must carry the trunk's digest: %+v", last)
	require.Equal(t, trunk.Username, last.username)
	require.Equal(t, callee, last.toUser, "the trunk dials the number asked for")
	// Media is offered as G.711 on the namespace's address, not loopback
	// (pion has no loopback candidates) and never a real interface.
	require.Contains(t, last.offer, "PCMU/8000")
	require.Contains(t, last.offer, "c=IN IP4 "+testenv.NetnsAddr(t))

	require.Eventually(t, func() bool {
		res, err := rooms.ListParticipants(ctx, &livekit.ListParticipantsRequest{Room: room})
		if err != nil {
			return false
		}
		for _, p := range res.GetParticipants() {
			if p.GetIdentity() == "sip_callee" && p.GetKind() == livekit.ParticipantInfo_SIP {
				return true
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond, "the answered callee never showed in the room as a SIP participant")

	_, err = rooms.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: room})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return phone.byes() > 0 }, 30*time.Second, 20*time.Millisecond,
		"deleting the room never hung up the phone (no BYE)")
}

// checkPhone is the smallest SIP phone that proves the leg: each INVITE
// without credentials gets a 401 digest challenge, an authorised one gets
// 200 OK with a G.711 answer. It records what it saw.
type checkPhone struct {
	addr string
	conn net.PacketConn
	rtp  net.PacketConn // the answer's media port; nothing is sent

	user, password string // set by serve, before the first request
	chal           digest.Challenge

	mu      sync.Mutex
	invites []seenInvite
	nbye    int
}

type seenInvite struct {
	authorised bool
	username   string
	toUser     string
	offer      string
	problem    string
}

func startCheckPhone(t *testing.T) *checkPhone {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	rtp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { rtp.Close() })
	return &checkPhone{addr: conn.LocalAddr().String(), conn: conn, rtp: rtp}
}

func (p *checkPhone) serve(t *testing.T, user, password string) {
	t.Helper()
	p.user, p.password = user, password
	p.chal = digest.Challenge{Realm: "sipcheck", Nonce: testenv.UniqueName(t), Algorithm: "MD5"}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("docshield-sipcheck"))
	require.NoError(t, err)
	srv, err := sipgo.NewServer(ua)
	require.NoError(t, err)
	srv.OnInvite(p.onInvite)
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		p.mu.Lock()
		p.nbye++
		p.mu.Unlock()
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeUDP(p.conn)
	}()
	t.Cleanup(func() {
		_ = ua.Close()
		p.conn.Close()
		<-done
	})
}

func (p *checkPhone) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	seen := seenInvite{toUser: req.Recipient.User, offer: string(req.Body())}
	h := req.GetHeader("Authorization")
	if h == nil {
		p.record(seen)
		res := sip.NewResponseFromRequest(req, sip.StatusUnauthorized, "Unauthorized", nil)
		res.AppendHeader(sip.NewHeader("WWW-Authenticate", p.chal.String()))
		_ = tx.Respond(res)
		return
	}
	if err := p.checkDigest(h.Value()); err != nil {
		seen.problem = err.Error()
		p.record(seen)
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusForbidden, "Forbidden", nil))
		return
	}
	seen.authorised, seen.username = true, p.user
	p.record(seen)
	rtpPort := p.rtp.LocalAddr().(*net.UDPAddr).Port
	answer := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=sipcheck\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n", rtpPort)
	res := sip.NewSDPResponseFromRequest(req, []byte(answer))
	res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{User: "phone", Host: "127.0.0.1", Port: p.conn.LocalAddr().(*net.UDPAddr).Port}})
	_ = tx.Respond(res)
}

// checkDigest verifies an Authorization header against the challenge and
// the trunk's credentials (RFC 2617 without qop, as challenged).
func (p *checkPhone) checkDigest(header string) error {
	cred, err := digest.ParseCredentials(header)
	if err != nil {
		return err
	}
	if cred.Username != p.user {
		return fmt.Errorf("username %q, want %q", cred.Username, p.user)
	}
	want, err := digest.Digest(&p.chal, digest.Options{Method: "INVITE", URI: cred.URI, Username: p.user, Password: p.password})
	if err != nil {
		return err
	}
	if cred.Response != want.Response {
		return errors.New("digest response does not match the trunk's password")
	}
	return nil
}

func (p *checkPhone) record(s seenInvite) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.invites = append(p.invites, s)
}

func (p *checkPhone) seen() []seenInvite {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]seenInvite(nil), p.invites...)
}

func (p *checkPhone) byes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nbye
}

// sipServiceLog is the end of livekit-sip's log, for failure messages.
func sipServiceLog(t *testing.T) string {
	b, err := os.ReadFile(filepath.Join(testenv.Get(t, "DEVSTACK_DIR"), "livekit-sip.log"))
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-15):], "\n")
}
