package telephony

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/docshield/voice-worker/internal/phone"
	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"google.golang.org/protobuf/types/known/durationpb"
)

// DefaultCalleeIdentity is the callee's participant identity in the room
// unless a DialRequest names another.
const DefaultCalleeIdentity = "sip_callee"

// Dialer places the outbound leg of a call and can hand it over to a human.
// The real one dials through LiveKit SIP; calleesim's simulates the phone
// network with a participant in the same room.
type Dialer interface {
	// Dial rings To and returns once the callee answered (a nil error) or
	// the attempt ended otherwise: a *DialError that carries the outcome
	// (OutcomeOf) and matches ErrBusy, ErrNoAnswer, ErrRejected or
	// ErrDialFailed.
	Dial(ctx context.Context, req DialRequest) (CallLeg, error)
	// Transfer hands an answered leg over to another number (a cold
	// transfer: the callee leaves our room once the target answers).
	Transfer(ctx context.Context, leg CallLeg, req TransferRequest) error
}

// DialRequest is one outbound dial.
type DialRequest struct {
	AttemptID string // call attempt id, attached to the SIP participant's attributes
	Room      string // the call's room (Rooms.Create)
	To        string // E.164 number to dial

	Identity string // callee's identity in the room; "": DefaultCalleeIdentity
	Name     string // callee's display name in the room

	CallerID    string            // overrides Config.CallerID
	CallerName  string            // overrides Config.CallerName
	Headers     map[string]string // extra SIP headers on the INVITE (X-... names)
	RingTimeout time.Duration     // overrides Config.RingTimeout
}

// CallLeg is an answered callee in a room.
type CallLeg struct {
	Room          string
	Identity      string // the callee participant's identity, as LiveKit named it
	ParticipantID string // its LiveKit participant SID, when known
	SIPCallID     string // LiveKit's SIP call id; empty for the simulator
}

// TransferRequest hands a call to another phone.
type TransferRequest struct {
	To           string            // E.164 number, or a tel: / sip: URI
	Headers      map[string]string // extra SIP headers on the REFER
	PlayDialtone bool              // let the callee hear ringing while the target is dialed
	RingTimeout  time.Duration     // 0: Config.RingTimeout
}

// SIPDialer dials through a LiveKit SIP outbound trunk.
type SIPDialer struct {
	cfg    Config
	client *lksdk.SIPClient
}

// NewSIPDialer returns the production dialer. It needs a SIP trunk.
func NewSIPDialer(cfg Config) (*SIPDialer, error) {
	err := cfg.Validate()
	if cfg.SIPTrunkID == "" {
		err = errors.Join(err, errors.New("telephony: SIPTrunkID is required to dial through LiveKit SIP"))
	}
	if err != nil {
		return nil, err
	}
	return &SIPDialer{cfg: cfg, client: lksdk.NewSIPClient(cfg.URL, cfg.APIKey, cfg.APISecret)}, nil
}

// Dial implements Dialer.
func (d *SIPDialer) Dial(ctx context.Context, req DialRequest) (CallLeg, error) {
	in, err := CreateSIPParticipantRequest(d.cfg, req)
	if err != nil {
		return CallLeg{}, &DialError{Outcome: Failed, Err: err}
	}
	start := time.Now()
	info, err := d.client.CreateSIPParticipant(ctx, in)
	if err != nil {
		de := ClassifyDialError(ctx, err, time.Since(start), in.RingingTimeout.AsDuration())
		return CallLeg{}, de
	}
	// The identity LiveKit gave the callee is the one to listen for; the
	// requested one stands in only if the reply names none.
	return CallLeg{
		Room:          orDefault(info.GetRoomName(), in.RoomName),
		Identity:      orDefault(info.GetParticipantIdentity(), in.ParticipantIdentity),
		ParticipantID: info.GetParticipantId(),
		SIPCallID:     info.GetSipCallId(),
	}, nil
}

// Transfer implements Dialer.
func (d *SIPDialer) Transfer(ctx context.Context, leg CallLeg, req TransferRequest) error {
	in, err := TransferSIPParticipantRequest(d.cfg, leg, req)
	if err != nil {
		return err
	}
	if _, err := d.client.TransferSIPParticipant(ctx, in); err != nil {
		return transferError(err)
	}
	return nil
}

// CreateSIPParticipantRequest builds the request LiveKit receives for a
// dial. Exported so the simulator records exactly what would be sent.
func CreateSIPParticipantRequest(cfg Config, req DialRequest) (*livekit.CreateSIPParticipantRequest, error) {
	var errs []error
	if req.Room == "" {
		errs = append(errs, errors.New("telephony: DialRequest.Room is required"))
	}
	if !phone.Valid(req.To) {
		errs = append(errs, errors.New("telephony: DialRequest.To must be an E.164 number like +15551234567"))
	}
	callerID := orDefault(req.CallerID, cfg.CallerID)
	if callerID != "" && !phone.Valid(callerID) {
		errs = append(errs, errors.New("telephony: DialRequest.CallerID must be an E.164 number"))
	}
	if err := validateHeaders("DialRequest.Headers", req.Headers); err != nil {
		errs = append(errs, err)
	}
	if req.RingTimeout < 0 {
		errs = append(errs, errors.New("telephony: DialRequest.RingTimeout must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	in := &livekit.CreateSIPParticipantRequest{
		SipTrunkId:          cfg.SIPTrunkID,
		SipCallTo:           req.To,
		SipNumber:           callerID,
		RoomName:            req.Room,
		ParticipantIdentity: orDefault(req.Identity, DefaultCalleeIdentity),
		ParticipantName:     req.Name,
		Headers:             cloneMap(req.Headers),
		PlayDialtone:        false, // the agent's room must stay silent until the callee answers
		WaitUntilAnswered:   true,
		RingingTimeout:      durationpb.New(orDefault(req.RingTimeout, cfg.ringTimeout())),
	}
	if req.AttemptID != "" {
		in.ParticipantAttributes = map[string]string{AttemptAttribute: req.AttemptID}
	}
	if cfg.MaxCallDuration > 0 {
		in.MaxCallDuration = durationpb.New(cfg.MaxCallDuration)
	}
	// nil keeps LiveKit's legacy behaviour (the number as display name).
	if name := orDefault(req.CallerName, cfg.CallerName); name != "" {
		in.DisplayName = &name
	}
	return in, nil
}

// AttemptAttribute links participants and rooms to their call attempt.
const AttemptAttribute = "docshield.attempt_id"

// TransferSIPParticipantRequest builds the request LiveKit receives for a
// transfer.
func TransferSIPParticipantRequest(cfg Config, leg CallLeg, req TransferRequest) (*livekit.TransferSIPParticipantRequest, error) {
	var errs []error
	if leg.Room == "" || leg.Identity == "" {
		errs = append(errs, errors.New("telephony: transfer needs the leg's Room and Identity"))
	}
	to, err := transferTarget(req.To)
	if err != nil {
		errs = append(errs, err)
	}
	if err := validateHeaders("TransferRequest.Headers", req.Headers); err != nil {
		errs = append(errs, err)
	}
	if req.RingTimeout < 0 {
		errs = append(errs, errors.New("telephony: TransferRequest.RingTimeout must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &livekit.TransferSIPParticipantRequest{
		RoomName:            leg.Room,
		ParticipantIdentity: leg.Identity,
		TransferTo:          to,
		PlayDialtone:        req.PlayDialtone,
		Headers:             cloneMap(req.Headers),
		RingingTimeout:      durationpb.New(orDefault(req.RingTimeout, cfg.ringTimeout())),
	}, nil
}

// transferTarget accepts a bare E.164 number (sent as a tel: URI) or a tel:
// or sip: URI, which LiveKit puts in the REFER's Refer-To.
func transferTarget(to string) (string, error) {
	switch {
	case phone.Valid(to):
		return "tel:" + to, nil
	case strings.HasPrefix(to, "tel:") && phone.Valid(strings.TrimPrefix(to, "tel:")):
		return to, nil
	case (strings.HasPrefix(to, "sip:") || strings.HasPrefix(to, "sips:")) && sipURI.MatchString(to):
		return to, nil
	}
	return "", errors.New("telephony: TransferRequest.To must be an E.164 number or a tel:/sip: URI")
}

var sipURI = regexp.MustCompile(`^sips?:[^\s<>"]+@[^\s<>"]+$`)

// headerName is an RFC 3261 token; values must not contain line breaks, or
// one header could smuggle another into the INVITE.
var headerName = regexp.MustCompile(`^[A-Za-z0-9!%'*+.^_` + "`" + `|~-]+$`)

func validateHeaders(field string, h map[string]string) error {
	for k, v := range h {
		if !headerName.MatchString(k) {
			return fmt.Errorf("telephony: %s has an invalid SIP header name %q", field, k)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return fmt.Errorf("telephony: %s[%s] contains a line break", field, k)
		}
	}
	return nil
}

func cloneMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// ErrTransferFailed matches every failed transfer.
var ErrTransferFailed = errors.New("telephony: transfer failed")

// TransferError is a failed transfer with what LiveKit reported.
type TransferError struct {
	Reason  string // LiveKit's transfer failure reason, if reported
	SIPCode int    // the transferee's SIP response, if any
	Err     error
}

func (e *TransferError) Error() string {
	msg := "telephony: transfer failed"
	if e.Reason != "" {
		msg += " (" + e.Reason + ")"
	}
	if e.SIPCode != 0 {
		msg += fmt.Sprintf(" (SIP %d)", e.SIPCode)
	}
	return msg + ": " + e.Err.Error()
}

func (e *TransferError) Unwrap() error        { return e.Err }
func (e *TransferError) Is(target error) bool { return target == ErrTransferFailed }

func transferError(err error) error {
	te := &TransferError{Err: err}
	if d := livekit.SIPTransferErrorFrom(err); d != nil {
		te.Reason = d.Reason.String()
	}
	te.SIPCode, _ = sipStatusOf(err)
	return te
}
