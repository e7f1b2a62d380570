package sipphone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/emiago/diago"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
)

// Config configures a Phone.
type Config struct {
	// Addr is where SIP is served, an IP and port ("127.0.0.1:5070"); port 0
	// picks a free one (see Phone.Addr). RTP uses free ports on the same IP.
	Addr string
	// TCP serves SIP over TCP on the same port as well as UDP.
	TCP bool
	// Auth, when set, challenges every INVITE for these credentials as a
	// carrier trunk does; nil answers without authentication.
	Auth *Auth
	// Default is the script of numbers that have none of their own (see
	// Handle); the zero Script answers and listens.
	Default Script
	// SpeechThreshold is the RMS level above which heard audio counts as
	// speech; 0 is DefaultSpeechThreshold.
	SpeechThreshold float64
	// KeepAudio is how much heard audio each call keeps for inspection;
	// 0 is two minutes.
	KeepAudio time.Duration
	// MaxCall bounds every call: the phone hangs up after it; 0 is ten
	// minutes.
	MaxCall time.Duration
	// KeepCalls is how many ended calls the phone remembers; 0 is 64.
	KeepCalls int
	// Latency is the network delay before each response the phone sends
	// to an INVITE or a REFER, as a carrier's network has; 0 is
	// DefaultLatency, negative none. On loopback a response can otherwise
	// arrive before the caller's transaction has finished starting, and
	// livekit-sip's transaction layer (livekit/sipgo) then sometimes ends
	// the transaction without passing the response on: the dial or the
	// transfer fails with "transaction failed to complete".
	Latency time.Duration
	Logger  *zap.Logger
}

// DefaultLatency is Config.Latency's default: a short one-way trip.
const DefaultLatency = 10 * time.Millisecond

// Phone is a carrier trunk and the handsets behind it, on one SIP address:
// it answers INVITEs as scripted per dialed number and records each call.
type Phone struct {
	// Immutable after Start.
	cfg    Config
	log    *zap.Logger
	addr   netip.AddrPort
	auth   *challenger // nil without Config.Auth
	ua     *sipgo.UserAgent
	udp    net.PacketConn
	tcp    net.Listener // nil without Config.TCP
	ctx    context.Context
	cancel context.CancelFunc

	wg      sync.WaitGroup // the goroutines serving INVITEs
	serving sync.WaitGroup // the listeners' serve loops

	mu      sync.Mutex // guards the fields below
	closed  bool
	scripts map[string]Script
	calls   []*Call          // in order of arrival
	byID    map[string]*Call // by SIP Call-ID
	changed chan struct{}    // closed and replaced when a call arrives
}

// Start listens on cfg.Addr and answers calls until Close.
func Start(cfg Config) (*Phone, error) {
	addr, err := netip.ParseAddrPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("sipphone: Config.Addr %q is not an IP and port: %w", cfg.Addr, err)
	}
	if err := cfg.Default.validate(); err != nil {
		return nil, fmt.Errorf("%w (Config.Default)", err)
	}
	if cfg.SpeechThreshold == 0 {
		cfg.SpeechThreshold = DefaultSpeechThreshold
	}
	if cfg.KeepAudio == 0 {
		cfg.KeepAudio = 2 * time.Minute
	}
	if cfg.MaxCall == 0 {
		cfg.MaxCall = 10 * time.Minute
	}
	if cfg.KeepCalls == 0 {
		cfg.KeepCalls = 64
	}
	switch {
	case cfg.Latency == 0:
		cfg.Latency = DefaultLatency
	case cfg.Latency < 0:
		cfg.Latency = 0
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	p := &Phone{cfg: cfg, log: cfg.Logger, scripts: map[string]Script{}, byID: map[string]*Call{}, changed: make(chan struct{})}
	if cfg.Auth != nil {
		if p.auth, err = newChallenger(*cfg.Auth); err != nil {
			return nil, err
		}
	}
	if p.udp, p.tcp, err = listen(addr, cfg.TCP); err != nil {
		return nil, err
	}
	p.addr = netip.AddrPortFrom(addr.Addr(), uint16(p.udp.LocalAddr().(*net.UDPAddr).Port))
	if err := p.serve(); err != nil {
		p.closeListeners()
		return nil, err
	}
	p.log.Info("sipphone.listening", zap.String("addr", p.addr.String()), zap.Bool("tcp", cfg.TCP), zap.Bool("auth", cfg.Auth != nil))
	return p, nil
}

// listen binds UDP, and TCP on the same port when asked. A free port for
// UDP may be taken for TCP: then it tries another, a bounded few times.
func listen(addr netip.AddrPort, withTCP bool) (net.PacketConn, net.Listener, error) {
	for try := 0; ; try++ {
		udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		if err != nil {
			return nil, nil, fmt.Errorf("sipphone: listen on Config.Addr %s (UDP): %w", addr, err)
		}
		if !withTCP {
			return udp, nil, nil
		}
		port := udp.LocalAddr().(*net.UDPAddr).Port
		tcp, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(addr.Addr(), uint16(port))))
		if err == nil {
			return udp, tcp, nil
		}
		_ = udp.Close()
		if addr.Port() != 0 || try == 4 {
			return nil, nil, fmt.Errorf("sipphone: listen on Config.Addr %s (TCP): %w", addr, err)
		}
	}
}

// serve wires sipgo (transactions, dialogs) and diago (SDP, RTP) to the
// listeners. Their logs go to ours at warn level and above: their info
// lines are per message.
func (p *Phone) serve() error {
	slogger := slog.New(zapslog.NewHandler(p.log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)).Core()))
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("sipphone"),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(slogger)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(slogger)))
	if err != nil {
		return fmt.Errorf("sipphone: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(slogger))
	if err != nil {
		_ = ua.Close()
		return fmt.Errorf("sipphone: %w", err)
	}
	host, port := p.addr.Addr().String(), int(p.addr.Port())
	opts := []diago.DiagoOption{
		diago.WithServer(srv),
		diago.WithLogger(slogger),
		diago.WithServerRequestMiddleware(p.intercept),
		diago.WithTransport(diago.Transport{Transport: "udp", BindHost: host, BindPort: port}),
	}
	if p.tcp != nil {
		opts = append(opts, diago.WithTransport(diago.Transport{Transport: "tcp", BindHost: host, BindPort: port}))
	}
	dg := diago.NewDiago(ua, opts...)
	dg.HandleFunc(p.answer)
	p.ua = ua
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.serving.Add(1)
	go func() {
		defer p.serving.Done()
		_ = srv.ServeUDP(p.udp)
	}()
	if p.tcp != nil {
		p.serving.Add(1)
		go func() {
			defer p.serving.Done()
			_ = srv.ServeTCP(p.tcp)
		}()
	}
	return nil
}

// Addr is the address SIP is served on (with the port picked, if
// Config.Addr asked for a free one).
func (p *Phone) Addr() netip.AddrPort { return p.addr }

// Handle makes calls to number (the user part of the Request-URI, as
// dialed: "+15550100001") follow s instead of Config.Default.
func (p *Phone) Handle(number string, s Script) error {
	if number == "" {
		return errors.New("sipphone: Handle needs a number")
	}
	if err := s.validate(); err != nil {
		return fmt.Errorf("%w (number %s)", err, logging.MaskPhone(number))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.scripts[number] = s
	return nil
}

// WaitCall returns the first call to number ("" for any number) that no
// earlier WaitCall returned, waiting for it to arrive.
func (p *Phone) WaitCall(ctx context.Context, number string) (*Call, error) {
	for {
		p.mu.Lock()
		for _, c := range p.calls {
			if !c.claimed && (number == "" || c.number == number) {
				c.claimed = true
				p.mu.Unlock()
				return c, nil
			}
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("sipphone: waiting for a call to %s: %w", logging.MaskPhone(number), ctx.Err())
		}
	}
}

// Calls returns the calls remembered, in order of arrival.
func (p *Phone) Calls() []*Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*Call(nil), p.calls...)
}

// intercept sees every request before diago does: it records BYEs (who
// hung up, and when) and answers REFERs as the carrier.
func (p *Phone) intercept(next sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		switch req.Method {
		case sip.BYE:
			if c := p.lookup(req); c != nil {
				c.callerBye()
			}
		case sip.REFER:
			if c := p.lookup(req); c != nil {
				c.refer(req, tx)
				return
			}
		}
		next(req, tx)
	}
}

func (p *Phone) lookup(req *sip.Request) *Call {
	id := req.CallID()
	if id == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byID[id.Value()]
}

// answer serves one INVITE, on sipgo's goroutine for it: authentication
// first, then the script of the dialed number.
func (p *Phone) answer(d *diago.DialogServerSession) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = d.Respond(sip.StatusServiceUnavailable, "Service Unavailable", nil)
		return
	}
	p.wg.Add(1)
	defer p.wg.Done()
	c := p.register(d.InviteRequest)
	script, ok := p.scripts[c.number]
	if !ok {
		script = p.cfg.Default
	}
	p.mu.Unlock()

	c.event(false, sip.INVITE, 0)
	if p.auth != nil && !p.authorize(c, d) {
		return
	}
	c.run(p.ctx, d, script, p.cfg.MaxCall)
}

// register returns the call of req's Call-ID, new unless this INVITE
// answers a challenge. Called with mu held.
func (p *Phone) register(req *sip.Request) *Call {
	id := req.CallID().Value()
	if c := p.byID[id]; c != nil && !isClosed(c.done) {
		return c
	}
	rec := Record{CallID: id, Number: req.Recipient.User, Transport: req.Transport()}
	if from := req.From(); from != nil {
		rec.From = from.Address.User
	}
	c := newCall(rec, newRecording(p.cfg.SpeechThreshold, p.cfg.KeepAudio), p.ctx.Done(), p.log)
	c.latency = p.cfg.Latency
	p.calls = append(p.calls, c)
	p.byID[id] = c
	p.forgetEnded()
	close(p.changed)
	p.changed = make(chan struct{})
	return c
}

// forgetEnded drops the oldest ended calls beyond KeepCalls, so a phone
// running for days (make dev) stays small. Called with mu held.
func (p *Phone) forgetEnded() {
	for i := 0; len(p.calls) > p.cfg.KeepCalls && i < len(p.calls); {
		c := p.calls[i]
		if !isClosed(c.done) {
			i++
			continue
		}
		p.calls = append(p.calls[:i], p.calls[i+1:]...)
		if p.byID[c.id] == c {
			delete(p.byID, c.id)
		}
	}
}

// authorize challenges an INVITE without valid credentials (the caller
// retries with the same Call-ID) and refuses wrong ones with 403.
func (p *Phone) authorize(c *Call, d *diago.DialogServerSession) bool {
	res := p.auth.check(d.InviteRequest)
	c.update(func(r *Record) { r.Auth = res })
	switch res {
	case AuthOK:
		return true
	case AuthChallenged:
		status, reason, h := p.auth.challenge()
		if err := c.respond(d, status, reason, h); err != nil {
			c.log.Warn("sipphone.challenge_failed", zap.Error(err))
		}
		return false
	}
	if c.respond(d, sip.StatusForbidden, "Forbidden") == nil {
		c.update(func(r *Record) { r.Status = sip.StatusForbidden })
	}
	c.ended(PartyPhone, "auth failed")
	c.finish()
	return false
}

// Close hangs up every call (BYE, or 480 to a ringing one), waits for
// them to end, then stops serving.
func (p *Phone) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	// Calls whose challenge was never answered have no goroutine left.
	for _, c := range p.Calls() {
		if !isClosed(c.done) {
			c.ended(PartyCaller, "challenge unanswered")
			c.finish()
		}
	}
	p.closeListeners()
	_ = p.ua.Close()
	p.serving.Wait()
	p.log.Info("sipphone.closed", zap.String("addr", p.addr.String()))
}

func (p *Phone) closeListeners() {
	_ = p.udp.Close()
	if p.tcp != nil {
		_ = p.tcp.Close()
	}
}

// URI is the SIP URI that dials number at this phone, for tests and for
// a trunk's address.
func (p *Phone) URI(number string) sip.Uri {
	return sip.Uri{Scheme: "sip", User: number, Host: p.addr.Addr().String(), Port: int(p.addr.Port())}
}
