package sipphone

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/diago/audio"
	"github.com/emiago/diago/media"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/require"
)

// quiet is the slog logger of the test SIP stacks: warnings and errors only.
var quiet = slog.New(slog.NewTextHandler(testLogWriter{}, &slog.HandlerOptions{Level: slog.LevelWarn}))

type testLogWriter struct{}

func (testLogWriter) Write(b []byte) (int, error) { return len(b), nil }

// g722 is G.722 as livekit-sip offers it first; the phone must skip it.
var g722 = media.Codec{Name: "G722", PayloadType: 9, SampleRate: 8000, SampleDur: 20 * time.Millisecond, NumChannels: 1}

// livekitOffer is the codec list livekit-sip offers (media-sdk's
// priorities): G722, PCMU, PCMA, telephone-event/8000 on 101.
var livekitOffer = []media.Codec{g722, media.CodecAudioUlaw, media.CodecAudioAlaw, media.CodecTelephoneEvent8000}

// caller is a SIP user agent on loopback playing livekit-sip's part: it
// dials the phone, talks, listens, sends DTMF and REFER, hangs up. It is
// diago and sipgo, independent of the phone's own call handling.
type caller struct {
	dg *diago.Diago

	mu       sync.Mutex // guards notifies
	notifies []int      // sipfrag statuses of the NOTIFYs received
}

func newCaller(t *testing.T, codecs ...media.Codec) *caller {
	t.Helper()
	if len(codecs) == 0 {
		codecs = livekitOffer
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	port := udp.LocalAddr().(*net.UDPAddr).Port
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("caller"),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet)))
	require.NoError(t, err)
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	require.NoError(t, err)
	c := &caller{}
	c.dg = diago.NewDiago(ua,
		diago.WithServer(srv),
		diago.WithLogger(quiet),
		diago.WithMediaConfig(diago.MediaConfig{Codecs: codecs}),
		diago.WithServerRequestMiddleware(c.intercept),
		diago.WithTransport(diago.Transport{Transport: "udp", BindHost: "127.0.0.1", BindPort: port}),
		diago.WithTransport(diago.Transport{Transport: "tcp", BindHost: "127.0.0.1", BindPort: port}),
	)
	c.dg.HandleFunc(func(d *diago.DialogServerSession) {
		_ = d.Respond(sip.StatusForbidden, "Forbidden", nil) // the caller takes no calls
	})
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.ServeUDP(udp)
	}()
	t.Cleanup(func() {
		_ = udp.Close()
		_ = ua.Close()
		<-served
	})
	// The caller sends first, from the listening socket: wait until the
	// transport layer has it (ServeUDP registers it on its goroutine).
	deadline := time.Now().Add(10 * time.Second)
	for conn, _ := ua.TransportLayer().GetConnection("udp", udp.LocalAddr().String()); conn == nil; conn, _ = ua.TransportLayer().GetConnection("udp", udp.LocalAddr().String()) {
		require.True(t, time.Now().Before(deadline), "the caller's UDP socket is never served")
		time.Sleep(time.Millisecond)
	}
	return c
}

// intercept answers the NOTIFYs of a REFER as livekit-sip does (200, and
// no hang-up of its own), keeping their sipfrag status.
func (c *caller) intercept(next sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if req.Method != sip.NOTIFY {
			next(req, tx)
			return
		}
		var code int
		if f := strings.Fields(string(req.Body())); len(f) >= 2 && f[0] == "SIP/2.0" {
			code, _ = strconv.Atoi(f[1])
		}
		c.mu.Lock()
		c.notifies = append(c.notifies, code)
		c.mu.Unlock()
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	}
}

func (c *caller) notified() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.notifies...)
}

type dialOpts struct {
	user, password string
	tcp            bool
	onResponse     func(*sip.Response)
}

// leg is an answered call as the caller holds it.
type leg struct {
	d     *diago.DialogClientSession
	med   *diago.DialogMedia
	codec Codec
	mouth *speaker
	dtmf  *diago.DTMFWriter
	heard *Recording
	wg    sync.WaitGroup
}

// dial calls number at p and, once answered, starts talking silence and
// listening. The call is hung up and closed at the end of the test.
func (c *caller) dial(ctx context.Context, t *testing.T, p *Phone, number string, o dialOpts) (*leg, error) {
	t.Helper()
	uri := p.URI(number)
	transport := "udp"
	if o.tcp {
		transport = "tcp"
	}
	d, err := c.dg.NewDialog(uri, diago.NewDialogOptions{Transport: transport})
	require.NoError(t, err)
	med, err := d.Invite(ctx, diago.InviteClientOptions{
		Username: o.user,
		Password: o.password,
		OnResponse: func(res *sip.Response) error {
			if o.onResponse != nil {
				o.onResponse(res)
			}
			return nil
		},
	})
	if err != nil {
		_ = d.Close()
		return nil, err
	}
	require.NoError(t, d.Ack(ctx))
	l := &leg{d: d, med: med, mouth: &speaker{}, heard: newRecording(DefaultSpeechThreshold, time.Minute)}
	audioCodec := media.CodecAudioFromSession(med.MediaSession())
	l.codec = Codec(strings.ToUpper(audioCodec.Name))
	l.dtmf, err = med.AudioWriterDTMF()
	require.NoError(t, err)
	callCtx, stop := context.WithCancel(d.Context())
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		l.mouth.run(callCtx, l.dtmf, l.codec)
	}()
	go func() {
		defer l.wg.Done()
		l.listen(audioCodec.PayloadTypeRecv())
	}()
	t.Cleanup(func() {
		hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.Hangup(hctx)
		stop()
		_ = med.Close()
		_ = d.Close()
		l.wg.Wait()
	})
	return l, nil
}

// listen decodes what the caller hears with diago's G.711 decoders.
func (l *leg) listen(pt uint8) {
	r := l.med.RTPPacketReader
	buf := make([]byte, media.RTPBufSize)
	pcm := make([]byte, 2*media.RTPBufSize)
	var clock rtpClock
	for {
		n, err := r.Read(buf)
		if err != nil {
			return
		}
		if n == 0 || r.PacketHeader.PayloadType != pt {
			continue
		}
		decode := audio.DecodeUlawTo
		if l.codec == PCMA {
			decode = audio.DecodeAlawTo
		}
		m, err := decode(pcm, buf[:n])
		if err != nil {
			return
		}
		samples := make([]int16, m/2)
		for i := range samples {
			samples[i] = int16(pcm[2*i]) | int16(pcm[2*i+1])<<8
		}
		clock.place(l.heard, time.Now(), r.PacketHeader, samples)
	}
}

// say speaks pcm and returns once it was sent.
func (l *leg) say(ctx context.Context, t *testing.T, pcm []int16) {
	t.Helper()
	select {
	case <-l.mouth.say(pcm):
	case <-ctx.Done():
		t.Fatalf("saying %d samples: %v", len(pcm), ctx.Err())
	}
}

// hungUp is closed once the phone ended the call (BYE received).
func (l *leg) hungUp() <-chan struct{} { return l.d.Context().Done() }

// refer sends a REFER as livekit-sip builds it: the target as given in
// Refer-To, no Referred-By, our Contact. It returns the response status.
func (l *leg) refer(ctx context.Context, target string) (int, error) {
	req := sip.NewRequest(sip.REFER, l.d.RemoteContact().Address)
	req.AppendHeader(sip.NewHeader("Refer-To", target))
	res, err := l.d.Do(ctx, req)
	if err != nil {
		return 0, err
	}
	return res.StatusCode, nil
}

// status is the final SIP status of a failed dial, or 0.
func status(err error) int {
	var e *sipgo.ErrDialogResponse
	if errors.As(err, &e) {
		return e.Res.StatusCode
	}
	return 0
}

// newPhone starts a phone on a free loopback port, closed at the end of
// the test.
func newPhone(t *testing.T, cfg Config) *Phone {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	p, err := Start(cfg)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func waitDone(t *testing.T, c *Call) Record {
	t.Helper()
	waitClosed(t, c.Done(), "the call to end")
	return c.Record()
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}
