package telephony

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	msdk "github.com/livekit/media-sdk"
	"github.com/livekit/media-sdk/jitter"
	"github.com/livekit/media-sdk/opus"
	"github.com/livekit/media-sdk/rtp"
	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
)

// AgentIdentity is the agent's participant identity in a call's room.
const AgentIdentity = "agent"

// tokenTTL bounds the join token; reconnects within a call reuse it.
const tokenTTL = 2 * time.Hour

// ParticipantOptions configure a participant that talks with one peer: the
// agent with the callee, or the simulated callee with the agent.
type ParticipantOptions struct {
	Identity   string // required
	Name       string
	Attributes map[string]string

	// Peer is the identity whose audio is delivered to OnPeerAudio. ""
	// names it later with SetPeer: the agent joins before dialing, and
	// the callee's identity is the one the dial's reply names.
	Peer string
	// OnPeerAudio receives the peer's voice as mono PCM at the player's
	// sample rate, in the order it arrived. It runs on the SDK's media
	// goroutine, so it must not block; pcm is the decoder's buffer, valid
	// only during the call (copy what you keep: 50 frames a second each
	// copied here would be garbage for the receivers that only look).
	OnPeerAudio func(pcm []int16)
	// OnPeerPacket receives each Opus packet of the peer's voice, in the
	// order OnPeerAudio gets them, just before it is decoded (for the
	// recording, which keeps the packets as they are). Same goroutine and
	// rules as OnPeerAudio, but pkt is valid only during the call.
	OnPeerPacket func(pkt []byte)

	Player PlayerOptions // the participant's own voice
	Logger *zap.Logger
}

// Participant is a seat in a call's room: it publishes a voice (Player) and
// hears one peer.
type Participant struct {
	// Immutable after Join.
	opts   ParticipantOptions
	room   *lksdk.Room
	player *Player
	log    *zap.Logger

	listening    signal // a remote subscribed to our voice
	peerAudio    signal // the peer's audio track is being received
	peerLeft     signal
	disconnected signal

	// reconnecting is the unix nanos when the SDK lost its connection to
	// LiveKit and began retrying, 0 while connected. Written by the SDK's
	// callbacks, read by the call's loop.
	reconnecting atomic.Int64

	mu   sync.Mutex // guards the fields below
	peer string     // opts.Peer, or the identity SetPeer named; "" until then
	// writers are the audio tracks being received: the peer's, and until
	// the peer is known everyone's (one of them is the peer's, subscribed
	// before its name was), read and dropped so none builds a backlog.
	writers []*peerWriter
	closed  bool
	gone    []string       // who left while the peer was unknown
	wg      sync.WaitGroup // receive goroutines, one per audio track

	closeOnce sync.Once
}

// Join enters room as opts.Identity, publishes the participant's voice and
// subscribes to the peer's.
func Join(ctx context.Context, cfg Config, room string, opts ParticipantOptions) (*Participant, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Identity == "" || room == "" {
		return nil, errors.New("telephony: Join needs a room and ParticipantOptions.Identity")
	}
	opts.Player.SampleRate = orDefault(opts.Player.SampleRate, cfg.sampleRate())
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Player.Logger == nil {
		opts.Player.Logger = opts.Logger
	}
	token, err := JoinToken(cfg, room, opts.Identity, opts.Name, opts.Attributes)
	if err != nil {
		return nil, err
	}
	// The player exists before the room so that callbacks, which run on
	// the SDK's goroutines, only ever see it fully built.
	player, err := newTrackPlayer(opts.Player)
	if err != nil {
		return nil, err
	}
	p := &Participant{
		opts:         opts,
		peer:         opts.Peer,
		player:       player,
		log:          opts.Logger.With(zap.String("room", room), zap.String("identity", opts.Identity)),
		listening:    newSignal(),
		peerAudio:    newSignal(),
		peerLeft:     newSignal(),
		disconnected: newSignal(),
	}
	p.room = lksdk.NewRoom(p.callbacks())
	if err := p.room.JoinWithContextAndToken(ctx, cfg.URL, token, lksdk.WithLogger(sdkLogger(opts.Logger))); err != nil {
		player.Close()
		return nil, fmt.Errorf("telephony: join %s as %s: %w", room, opts.Identity, err)
	}
	_, err = p.room.LocalParticipant.PublishTrack(player.track, &lksdk.TrackPublicationOptions{
		Name:   opts.Identity + "-voice",
		Source: livekit.TrackSource_MICROPHONE,
	})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("telephony: publish %s's voice: %w", opts.Identity, err)
	}
	return p, nil
}

// JoinToken returns a token that lets identity join room, publish and
// subscribe, and nothing else.
func JoinToken(cfg Config, room, identity, name string, attrs map[string]string) (string, error) {
	grant := &auth.VideoGrant{RoomJoin: true, Room: room}
	grant.SetCanPublish(true)
	grant.SetCanSubscribe(true)
	// Data carries DTMF to the SIP leg (SendDTMF), nothing else.
	grant.SetCanPublishData(true)
	at := auth.NewAccessToken(cfg.APIKey, cfg.APISecret).
		SetVideoGrant(grant).
		SetIdentity(identity).
		SetName(name).
		SetValidFor(tokenTTL)
	if len(attrs) > 0 {
		at.SetAttributes(attrs)
	}
	token, err := at.ToJWT()
	if err != nil {
		return "", fmt.Errorf("telephony: sign join token: %w", err)
	}
	return token, nil
}

func (p *Participant) callbacks() *lksdk.RoomCallback {
	return &lksdk.RoomCallback{
		ParticipantCallback: lksdk.ParticipantCallback{
			OnTrackSubscribed:   p.onTrackSubscribed,
			OnAttributesChanged: p.onAttributesChanged,
		},
		OnParticipantDisconnected: p.onParticipantLeft,
		OnLocalTrackSubscribed: func(*lksdk.LocalTrackPublication, *lksdk.LocalParticipant) {
			p.listening.fire()
			p.player.Open()
		},
		OnDisconnected: p.disconnected.fire,
		// The SDK retries a lost connection for minutes (10 attempts, up
		// to a minute apart); the call decides how long it can wait.
		OnReconnecting: func() { p.reconnecting.CompareAndSwap(0, time.Now().UnixNano()) },
		OnReconnected:  func() { p.reconnecting.Store(0) },
	}
}

func (p *Participant) onTrackSubscribed(track *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
	if track.Kind() != webrtc.RTPCodecTypeAudio {
		return
	}
	if track.Codec().MimeType != webrtc.MimeTypeOpus {
		p.log.Warn("telephony.peer_audio_not_opus", zap.String("codec", track.Codec().MimeType))
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
	case p.peer == "" && len(p.writers) < maxEarly:
		p.receiveLocked(track, rp.Identity(), false)
	case p.peer != "" && rp.Identity() == p.peer:
		p.receiveLocked(track, rp.Identity(), true)
	}
}

// maxEarly bounds the tracks received while the peer is unknown: a call's
// room holds the agent, the callee and at most a transfer target.
const maxEarly = 8

// receiveLocked starts receiving identity's track: delivered to
// OnPeerAudio if live, dropped until SetPeer makes it live otherwise.
// Called with mu held.
func (p *Participant) receiveLocked(track *webrtc.TrackRemote, identity string, live bool) {
	w := &peerWriter{identity: identity, rate: p.opts.Player.SampleRate, deliver: p.opts.OnPeerAudio, first: p.peerAudio.fire}
	w.live.Store(live)
	p.writers = append(p.writers, w)
	p.wg.Add(1)
	go p.receive(track, w)
}

func (p *Participant) onParticipantLeft(rp *lksdk.RemoteParticipant) { p.peerGone(rp.Identity()) }

// onAttributesChanged: LiveKit's SIP service sets its participant's
// sip.callStatus to "hangup" as the call ends, then leaves the room. On a
// busy machine its leave never reached LiveKit (it closed the signal
// connection first), and LiveKit kept a callee who had hung up in the
// room for more than 10 s: the call ended media lost, and the campaign
// would have called them again. The attribute is the SIP service's own
// word that the call is over.
func (p *Participant) onAttributesChanged(changed map[string]string, who lksdk.Participant) {
	if sipCallOver(changed) {
		p.peerGone(who.Identity())
	}
}

// SIPCallHungUp is the sip.callStatus LiveKit's SIP service gives its
// participant once the call is over (the callee's BYE, a hang-up of ours,
// a cancelled dial).
const SIPCallHungUp = "hangup"

// sipCallOver reports whether a participant's attributes say its SIP call
// is over.
func sipCallOver(attrs map[string]string) bool {
	return attrs[livekit.AttrSIPCallStatus] == SIPCallHungUp
}

func (p *Participant) peerGone(identity string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.peer == "" && len(p.gone) < maxEarly:
		if !slices.Contains(p.gone, identity) {
			p.gone = append(p.gone, identity)
		}
	case p.peer != "" && identity == p.peer:
		p.peerLeft.fire()
	}
}

// SetPeer names the peer of a participant that joined without one (the
// agent learns the callee's identity from the dial's reply). An audio
// track the peer published before is delivered from now on (what it
// carried before was dropped), others' stop, and a peer that already left
// closes PeerLeft. Naming the same peer again is a no-op; naming another
// is an error.
func (p *Participant) SetPeer(identity string) error {
	if identity == "" {
		return errors.New("telephony: SetPeer needs an identity")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.peer != "" {
		if p.peer == identity {
			return nil
		}
		return fmt.Errorf("telephony: the peer is %s already, not %s", p.peer, identity)
	}
	p.peer = identity
	kept := p.writers[:0]
	for _, w := range p.writers {
		if w.identity == identity {
			w.live.Store(true)
			kept = append(kept, w)
		} else {
			_ = w.Close() // its goroutine ends with the track
		}
	}
	p.writers = kept
	if slices.Contains(p.gone, identity) {
		p.peerLeft.fire()
	}
	p.gone = nil
	return nil
}

// Peer is the identity of the peer, "" until it is known.
func (p *Participant) Peer() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peer
}

// receive decodes the peer's Opus straight to our sample rate until the
// track ends (the peer left, or we did). Opus decodes at 8 to 48 kHz
// natively; the SDK's PCMRemoteTrack instead decodes at 48 kHz and resamples
// with soxr, which holds back one 20 ms frame and costs CPU for nothing.
// The SDK's jitter buffer still puts packets in order.
func (p *Participant) receive(track *webrtc.TrackRemote, w *peerWriter) {
	defer p.wg.Done()
	log := sdkLogger(p.log)
	dec, err := opus.Decode(w, 1, log)
	if err != nil {
		p.log.Warn("telephony.peer_audio_failed", zap.Error(err))
		return
	}
	if p.opts.OnPeerPacket != nil {
		dec = packetTap{Writer: dec, tap: p.opts.OnPeerPacket, live: &w.live}
	}
	h := rtp.HandleJitter(rtp.NewNopCloser(rtp.NewMediaStreamIn[opus.Sample](dec)), jitter.WithLogger(log))
	if err := rtp.HandleLoop(track, h); err != nil && !errors.Is(err, io.EOF) && !w.closed.Load() {
		p.log.Debug("telephony.peer_audio_ended", zap.Error(err))
	}
}

// Player is the participant's voice.
func (p *Participant) Player() *Player { return p.player }

// Identity is the participant's identity.
func (p *Participant) Identity() string { return p.opts.Identity }

// SID is the participant's LiveKit session id.
func (p *Participant) SID() string { return p.room.LocalParticipant.SID() }

// Listening is closed once a remote participant subscribed to our voice.
func (p *Participant) Listening() <-chan struct{} { return p.listening.ch }

// PeerAudio is closed when the first audio from the peer arrived.
func (p *Participant) PeerAudio() <-chan struct{} { return p.peerAudio.ch }

// PeerLeft is closed when the peer left the room (for the agent: the callee
// hung up).
func (p *Participant) PeerLeft() <-chan struct{} { return p.peerLeft.ch }

// Disconnected is closed when we are out of the room: removed, the room
// deleted, the connection lost for good, or Close.
func (p *Participant) Disconnected() <-chan struct{} { return p.disconnected.ch }

// dtmfCodes are the RFC 4733 event codes of the keys SendDTMF presses.
var dtmfCodes = map[rune]uint32{
	'0': 0, '1': 1, '2': 2, '3': 3, '4': 4, '5': 5, '6': 6, '7': 7, '8': 8, '9': 9,
	'*': 10, '#': 11, 'A': 12, 'B': 13, 'C': 14, 'D': 15,
}

// SendDTMF presses keys on the phone line, in order: LiveKit's SIP service
// turns each into RFC 4733 telephone events on the callee's leg, one after
// the other. It returns once they are handed to LiveKit.
func (p *Participant) SendDTMF(keys string) error {
	for _, k := range keys {
		if _, ok := dtmfCodes[k]; !ok {
			return fmt.Errorf("telephony: %q is not a DTMF key", k)
		}
	}
	for _, k := range keys {
		if err := p.room.LocalParticipant.PublishDTMF(dtmfCodes[k], string(k)); err != nil {
			return fmt.Errorf("telephony: send DTMF %q: %w", k, err)
		}
	}
	return nil
}

// ReconnectingSince is when the connection to LiveKit was lost and the SDK
// began to retry it; zero while connected. Media does not flow meanwhile.
func (p *Participant) ReconnectingSince() time.Time {
	if n := p.reconnecting.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// DisconnectReason is LiveKit's reason once Disconnected is closed.
func (p *Participant) DisconnectReason() livekit.DisconnectReason { return p.room.DisconnectReason() }

// WaitListening waits until someone subscribed to our voice, so that what
// we say first (the greeting) is heard from its first word.
func (p *Participant) WaitListening(ctx context.Context) error {
	select {
	case <-p.listening.ch:
		return nil
	case <-p.disconnected.ch:
		return errors.New("telephony: left the room before anyone listened")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the voice, leaves the room and stops delivering the peer's
// audio. It is idempotent.
func (p *Participant) Close() {
	p.closeOnce.Do(func() {
		p.player.Close()
		p.room.Disconnect() // ends the peer's tracks, so receive returns
		p.mu.Lock()
		p.closed = true
		for _, w := range p.writers {
			_ = w.Close()
		}
		p.mu.Unlock()
		p.disconnected.fire()
		done := make(chan struct{})
		go func() { p.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(closeWait):
			p.log.Warn("telephony.close.receive_still_running", zap.Duration("waited", closeWait))
		}
	})
}

// closeWait bounds how long Close waits for the receive goroutines; they
// end as soon as the SDK closes the tracks, which Disconnect does.
const closeWait = 5 * time.Second

// peerWriter hands decoded PCM of the peer to the participant's consumer.
// It is the end of the decoder's writer chain (a media-sdk PCM16Writer).
type peerWriter struct {
	identity string // whose track it is
	rate     int
	deliver  func([]int16)
	first    func()
	once     sync.Once
	live     atomic.Bool // the peer's: deliver; until then, drop
	closed   atomic.Bool
}

func (w *peerWriter) String() string  { return "PeerAudio" }
func (w *peerWriter) SampleRate() int { return w.rate }

func (w *peerWriter) WriteSample(s msdk.PCM16Sample) error {
	if w.closed.Load() {
		return errWriterClosed
	}
	if !w.live.Load() {
		return nil // not known to be the peer's (yet)
	}
	w.once.Do(w.first)
	if w.deliver != nil && len(s) > 0 {
		w.deliver(s)
	}
	return nil
}

func (w *peerWriter) Close() error {
	w.closed.Store(true)
	return nil
}

var errWriterClosed = errors.New("telephony: peer audio writer closed")

// packetTap hands each packet to tap before the decoder gets it.
type packetTap struct {
	opus.Writer
	tap  func([]byte)
	live *atomic.Bool // the writer's: only the peer's packets are tapped
}

func (t packetTap) WriteSample(s opus.Sample) error {
	if len(s) > 0 && t.live.Load() {
		t.tap(s)
	}
	return t.Writer.WriteSample(s)
}

// signal is a channel closed once.
type signal struct {
	ch   chan struct{}
	once *sync.Once
}

func newSignal() signal { return signal{ch: make(chan struct{}), once: new(sync.Once)} }

func (s signal) fire() { s.once.Do(func() { close(s.ch) }) }
