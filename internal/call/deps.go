package call

import (
	"context"
	"time"

	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
)

// CallStore is what one call reads and writes in MongoDB. *store.Store
// implements it; every call-document write goes through it, because Store
// serializes its writes to one attempt (see internal/store's package doc).
type CallStore interface {
	Transition(ctx context.Context, c store.Claim, to store.CallStatus, f store.CallFields) error
	AppendTurns(ctx context.Context, c store.Claim, ts ...store.Turn) error
	AppendToolCall(ctx context.Context, c store.Claim, tc store.ToolCall) error
	ExtendLease(ctx context.Context, c store.Claim, lease time.Duration) error
	RecordCallDetails(ctx context.Context, c store.Claim, d store.CallDetails) error
	// EndCall records the end in the claim, then on the call document
	// (see internal/store/ends.go).
	EndCall(ctx context.Context, c store.Claim, e store.EndRecord) error
	IsDoNotCall(ctx context.Context, phone string) (bool, error)
	AddDoNotCall(ctx context.Context, d store.DoNotCall) error
}

var _ CallStore = (*store.Store)(nil)

// RoomService creates and tears down a call's LiveKit room.
// *telephony.Rooms implements it.
type RoomService interface {
	Create(ctx context.Context, attemptID string) (string, error)
	// Hangup removes the callee and deletes the room, on its own bounded
	// context even when ctx is already cancelled.
	Hangup(ctx context.Context, leg telephony.CallLeg) error
	Delete(ctx context.Context, room string) error
	// HasParticipant asks LiveKit whether identity is in room now.
	HasParticipant(ctx context.Context, room, identity string) (bool, error)
}

var _ RoomService = (*telephony.Rooms)(nil)

// Enqueuer enqueues follow-up tasks (call:analyze). *queue.Client
// implements it.
type Enqueuer interface {
	Enqueue(ctx context.Context, p tasks.Payload, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Recorder receives both sides of an answered call as the Opus packets
// they travel in, stamped with wall-clock time, for the two-channel
// recording (internal/recording).
//
// CalleePacket is called on the media goroutine with each packet of the
// callee's voice as it arrives (arrived: its audio ended then), and
// AgentPacket on the player's pacing goroutine with each packet of the
// agent's voice as it is sent, silence included (sent: its audio starts
// then), so a barged-in reply ends where the callee heard it stop. Neither
// may block: buffer elsewhere. Neither is called after Close begins. pkt
// is valid only during the call: the recorder copies what it keeps.
type Recorder interface {
	CalleePacket(arrived time.Time, pkt []byte)
	AgentPacket(sent time.Time, pkt []byte)
	// Close finishes the recording and says where it is. An error is
	// recorded on the call (recording_error); the call ends normally.
	Close(ctx context.Context) (*store.Recording, error)
}

// RecorderFactory starts the recording of an answered call. answeredAt is
// the call's time zero (transcript offsets count from it too).
type RecorderFactory func(ctx context.Context, claim store.Claim, c *store.Call, answeredAt time.Time) (Recorder, error)
