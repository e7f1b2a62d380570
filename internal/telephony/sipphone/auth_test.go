package sipphone

import (
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/stretchr/testify/require"
)

// invite is an INVITE answering a challenge the way livekit-sip's
// outbound.go does: digest over the To URI, header named after the
// challenge (Authorization or Proxy-Authorization).
func invite(t *testing.T, c *challenger, user, password string, mutate func(*digest.Credentials)) *sip.Request {
	t.Helper()
	_, _, h := c.challenge()
	chal, err := digest.ParseChallenge(h.Value())
	require.NoError(t, err)
	to := sip.Uri{Scheme: "sip", User: "+15550100001", Host: "127.0.0.1", Port: 5070}
	cred, err := digest.Digest(chal, digest.Options{Method: "INVITE", URI: to.String(), Username: user, Password: password})
	require.NoError(t, err)
	if mutate != nil {
		mutate(cred)
	}
	req := sip.NewRequest(sip.INVITE, to)
	_, _, _, name := c.headers()
	req.AppendHeader(sip.NewHeader(name, cred.String()))
	return req
}

func TestChallengerChecksDigests(t *testing.T) {
	for _, proxy := range []bool{false, true} {
		c, err := newChallenger(Auth{Username: "trunk", Password: "s3cret", Proxy: proxy})
		require.NoError(t, err)
		status, _, h := c.challenge()
		if proxy {
			require.Equal(t, 407, status)
			require.Equal(t, "Proxy-Authenticate", h.Name())
		} else {
			require.Equal(t, 401, status)
			require.Equal(t, "WWW-Authenticate", h.Name())
		}
		chal, err := digest.ParseChallenge(h.Value())
		require.NoError(t, err)
		require.Equal(t, DefaultRealm, chal.Realm)
		require.Equal(t, []string{"auth"}, chal.QOP)

		require.Equal(t, AuthOK, c.check(invite(t, c, "trunk", "s3cret", nil)), "livekit-sip's answer")
		require.Equal(t, AuthFailed, c.check(invite(t, c, "trunk", "wrong", nil)))
		require.Equal(t, AuthFailed, c.check(invite(t, c, "other", "s3cret", nil)))
		require.Equal(t, AuthFailed, c.check(invite(t, c, "trunk", "s3cret", func(cr *digest.Credentials) { cr.Realm = "elsewhere" })))
		require.Equal(t, AuthFailed, c.check(invite(t, c, "trunk", "s3cret", func(cr *digest.Credentials) { cr.Nc = 2 })), "the response covers the nonce count")
		require.Equal(t, AuthChallenged, c.check(invite(t, c, "trunk", "s3cret", func(cr *digest.Credentials) { cr.Nonce = "forged" })), "a nonce the phone never issued is challenged again")
		require.Equal(t, AuthChallenged, c.check(sip.NewRequest(sip.INVITE, sip.Uri{Host: "127.0.0.1"})), "no credentials")

		// The other header than the one challenged for is not looked at.
		req := invite(t, c, "trunk", "s3cret", nil)
		other := "Proxy-Authorization"
		if proxy {
			other = "Authorization"
		}
		_, _, _, name := c.headers()
		moved := sip.NewRequest(sip.INVITE, req.Recipient)
		moved.AppendHeader(sip.NewHeader(other, req.GetHeader(name).Value()))
		require.Equal(t, AuthChallenged, c.check(moved))
	}
}

// Callers that answer without qop (RFC 2069 style) are accepted too.
func TestChallengerAcceptsDigestWithoutQOP(t *testing.T) {
	c, err := newChallenger(Auth{Username: "trunk", Password: "s3cret", Realm: "carrier.example"})
	require.NoError(t, err)
	_, _, h := c.challenge()
	chal, err := digest.ParseChallenge(h.Value())
	require.NoError(t, err)
	chal.QOP = nil
	cred, err := digest.Digest(chal, digest.Options{Method: "INVITE", URI: "sip:+15550100001@127.0.0.1", Username: "trunk", Password: "s3cret"})
	require.NoError(t, err)
	req := sip.NewRequest(sip.INVITE, sip.Uri{Host: "127.0.0.1"})
	req.AppendHeader(sip.NewHeader("Authorization", cred.String()))
	require.Equal(t, AuthOK, c.check(req))
}

// Only recent nonces are remembered.
func TestChallengerForgetsOldNonces(t *testing.T) {
	c, err := newChallenger(Auth{Username: "trunk", Password: "s3cret"})
	require.NoError(t, err)
	old := invite(t, c, "trunk", "s3cret", nil)
	for range keepNonces {
		c.challenge()
	}
	require.Equal(t, AuthChallenged, c.check(old))
	require.Len(t, c.nonces, keepNonces)
}

func TestChallengerNeedsCredentials(t *testing.T) {
	_, err := newChallenger(Auth{Username: "trunk"})
	require.ErrorContains(t, err, "Config.Auth")
}
