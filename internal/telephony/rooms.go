package telephony

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/twitchtv/twirp"
	"go.uber.org/zap"
)

// Rooms creates and tears down the one LiveKit room each call gets.
type Rooms struct {
	cfg    Config
	client *lksdk.RoomServiceClient
	log    *zap.Logger
}

// NewRooms returns a room service client. log may be nil.
func NewRooms(cfg Config, log *zap.Logger) (*Rooms, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Rooms{cfg: cfg, client: lksdk.NewRoomServiceClient(cfg.URL, cfg.APIKey, cfg.APISecret), log: log}, nil
}

// RoomMetadata is the JSON metadata of a call's room, so anyone looking at
// LiveKit (webhooks, the dashboard) can find the attempt.
type RoomMetadata struct {
	AttemptID string `json:"attempt_id"`
}

// RoomName is the room of an attempt: one name per attempt, so a redelivered
// task cannot open a second room for the same call.
func RoomName(attemptID string) string {
	return "call-" + roomUnsafe.ReplaceAllString(attemptID, "_")
}

var roomUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// Create creates the attempt's room and returns its name.
func (r *Rooms) Create(ctx context.Context, attemptID string) (string, error) {
	if attemptID == "" {
		return "", errors.New("telephony: attemptID is required to create a room")
	}
	meta, err := json.Marshal(RoomMetadata{AttemptID: attemptID})
	if err != nil {
		return "", err
	}
	name := RoomName(attemptID)
	_, err = r.client.CreateRoom(ctx, &livekit.CreateRoomRequest{
		Name:             name,
		EmptyTimeout:     uint32(r.cfg.emptyTimeout().Seconds()),
		DepartureTimeout: uint32(r.cfg.departTimeout().Seconds()),
		MaxParticipants:  uint32(r.cfg.maxParticipants()),
		Metadata:         string(meta),
	})
	if err != nil {
		return "", fmt.Errorf("telephony: create room %s: %w", name, err)
	}
	return name, nil
}

// HangupTimeout bounds Hangup.
const HangupTimeout = 5 * time.Second

// Hangup ends the call: it removes the callee (for SIP, LiveKit sends BYE)
// and deletes the room, which disconnects everyone else. It is idempotent:
// a participant or room already gone is success. It runs on its own
// HangupTimeout budget, detached from ctx's cancellation, because the
// hang-up matters most when the call's context is already gone (shutdown,
// a task deadline). Failures are logged and returned, but the call is over
// either way; the room's timeouts reclaim whatever a failure left behind.
func (r *Rooms) Hangup(ctx context.Context, leg CallLeg) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), HangupTimeout)
	defer cancel()
	var errs []error
	if leg.Identity != "" {
		_, err := r.client.RemoveParticipant(ctx, &livekit.RoomParticipantIdentity{Room: leg.Room, Identity: leg.Identity})
		if err != nil && !isNotFound(err) {
			r.log.Warn("telephony.hangup.remove_participant_failed", zap.String("room", leg.Room), zap.Error(err))
			errs = append(errs, fmt.Errorf("telephony: remove %s from %s: %w", leg.Identity, leg.Room, err))
		}
	}
	if err := r.Delete(ctx, leg.Room); err != nil {
		r.log.Warn("telephony.hangup.delete_room_failed", zap.String("room", leg.Room), zap.Error(err))
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Delete deletes a room; a room that does not exist is success.
func (r *Rooms) Delete(ctx context.Context, room string) error {
	if room == "" {
		return errors.New("telephony: room name is required")
	}
	_, err := r.client.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: room})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("telephony: delete room %s: %w", room, err)
	}
	return nil
}

// HasParticipant asks LiveKit whether identity is in room now. The SDK
// reports a participant leaving only if it had seen them join, which under
// load it may not have; the server knows.
func (r *Rooms) HasParticipant(ctx context.Context, room, identity string) (bool, error) {
	info, err := r.client.GetParticipant(ctx, &livekit.RoomParticipantIdentity{Room: room, Identity: identity})
	switch {
	case err == nil:
		// A SIP participant whose call is over is gone, even while LiveKit
		// still holds its seat (see Participant's onAttributesChanged).
		return !sipCallOver(info.GetAttributes()), nil
	case isNotFound(err):
		return false, nil
	}
	return false, fmt.Errorf("telephony: look for %s in room %s: %w", identity, room, err)
}

// Exists reports whether LiveKit still has the room.
func (r *Rooms) Exists(ctx context.Context, room string) (bool, error) {
	res, err := r.client.ListRooms(ctx, &livekit.ListRoomsRequest{Names: []string{room}})
	if err != nil {
		return false, fmt.Errorf("telephony: list rooms: %w", err)
	}
	for _, rm := range res.GetRooms() {
		if rm.GetName() == room {
			return true, nil
		}
	}
	return false, nil
}

// Participants lists the identities in a room.
func (r *Rooms) Participants(ctx context.Context, room string) ([]string, error) {
	res, err := r.client.ListParticipants(ctx, &livekit.ListParticipantsRequest{Room: room})
	if err != nil {
		return nil, fmt.Errorf("telephony: list participants of %s: %w", room, err)
	}
	ids := make([]string, 0, len(res.GetParticipants()))
	for _, p := range res.GetParticipants() {
		ids = append(ids, p.GetIdentity())
	}
	return ids, nil
}

func isNotFound(err error) bool {
	te, ok := errors.AsType[twirp.Error](err)
	return ok && te.Code() == twirp.NotFound
}
