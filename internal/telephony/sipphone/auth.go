package sipphone

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"sync"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// Auth is the digest authentication a carrier trunk demands of the
// caller: every INVITE is challenged until it proves these credentials.
type Auth struct {
	Username, Password string
	// Realm names the trunk in the challenge; "" is DefaultRealm.
	Realm string
	// Proxy challenges with 407 Proxy-Authenticate instead of 401
	// WWW-Authenticate: carriers use both, livekit-sip answers both.
	Proxy bool
}

// DefaultRealm is the realm of challenges when Auth.Realm is empty.
const DefaultRealm = "sipphone.invalid"

// AuthResult says how a call's INVITE fared against the phone's Auth.
type AuthResult string

// Auth results, in the order a call goes through them.
const (
	AuthNone       AuthResult = ""           // the phone demands no authentication
	AuthChallenged AuthResult = "challenged" // challenged; no authenticated INVITE (yet)
	AuthOK         AuthResult = "ok"         // the credentials matched
	AuthFailed     AuthResult = "failed"     // wrong credentials: refused with 403
)

// keepNonces bounds the challenges remembered: a caller answers its
// challenge within one call setup, so only recent nonces matter.
const keepNonces = 256

// challenger issues digest challenges and checks the answers. Safe for
// concurrent use (INVITEs are handled on their own goroutines).
type challenger struct {
	auth Auth // immutable

	mu     sync.Mutex // guards nonces and order
	nonces map[string]bool
	order  []string
}

func newChallenger(a Auth) (*challenger, error) {
	if a.Username == "" || a.Password == "" {
		return nil, errors.New("sipphone: Config.Auth needs both Username and Password")
	}
	if a.Realm == "" {
		a.Realm = DefaultRealm
	}
	return &challenger{auth: a, nonces: map[string]bool{}}, nil
}

// headers returns the challenge and credentials header names of the
// configured style.
func (c *challenger) headers() (status int, reason, challenge, credentials string) {
	if c.auth.Proxy {
		return sip.StatusProxyAuthRequired, "Proxy Authentication Required", "Proxy-Authenticate", "Proxy-Authorization"
	}
	return sip.StatusUnauthorized, "Unauthorized", "WWW-Authenticate", "Authorization"
}

// challenge returns a fresh challenge header (MD5, qop=auth, as carriers
// send) and the status to send it with.
func (c *challenger) challenge() (status int, reason string, h sip.Header) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	nonce := hex.EncodeToString(b[:])
	c.mu.Lock()
	c.nonces[nonce] = true
	c.order = append(c.order, nonce)
	if len(c.order) > keepNonces {
		delete(c.nonces, c.order[0])
		c.order = c.order[1:]
	}
	c.mu.Unlock()
	status, reason, name, _ := c.headers()
	chal := digest.Challenge{Realm: c.auth.Realm, Nonce: nonce, Algorithm: "MD5", QOP: []string{"auth"}}
	return status, reason, sip.NewHeader(name, chal.String())
}

// check reads req's credentials: AuthChallenged when there are none or
// they answer a challenge this phone did not issue (challenge again),
// AuthOK or AuthFailed otherwise. The digest URI is taken as the caller
// sent it: livekit-sip digests the To URI, sipgo the Request-URI.
func (c *challenger) check(req *sip.Request) AuthResult {
	_, _, _, name := c.headers()
	h := req.GetHeader(name)
	if h == nil {
		return AuthChallenged
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil {
		return AuthFailed
	}
	c.mu.Lock()
	known := c.nonces[cred.Nonce]
	c.mu.Unlock()
	if !known {
		return AuthChallenged
	}
	chal := &digest.Challenge{Realm: c.auth.Realm, Nonce: cred.Nonce, Algorithm: cred.Algorithm}
	if cred.QOP != "" {
		chal.QOP = []string{cred.QOP}
	}
	want, err := digest.Digest(chal, digest.Options{
		Method:   req.Method.String(),
		URI:      cred.URI,
		Username: c.auth.Username,
		Password: c.auth.Password,
		Cnonce:   cred.Cnonce,
		Count:    cred.Nc,
	})
	if err != nil || cred.Username != c.auth.Username || cred.Realm != c.auth.Realm ||
		subtle.ConstantTimeCompare([]byte(want.Response), []byte(cred.Response)) != 1 {
		return AuthFailed
	}
	return AuthOK
}
