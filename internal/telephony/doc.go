// Package telephony is the worker's phone line, built on LiveKit: a room per
// call, the outbound SIP dial and its outcome, the agent's seat in the room
// (the callee's voice in as PCM, and as the Opus packets it came in; the
// agent's voice out as PCM through a queue that barge-in can clear, with
// every Opus packet sent handed on too), hang-up, transfer and a
// credentials check.
//
// A call runs in this order:
//
//	room, _ := rooms.Create(ctx, attemptID)              // one room per attempt
//	agent, _ := telephony.Join(ctx, cfg, room, telephony.ParticipantOptions{
//		Identity: telephony.AgentIdentity,               // no Peer yet: the dial names the callee
//		OnPeerAudio: sendToModel,                        // callee's voice, 24 kHz mono
//	})                                                   // seated before the phone rings
//	defer agent.Close()
//	leg, err := dialer.Dial(ctx, telephony.DialRequest{Room: room, To: phone})
//	// not answered: errors.Is(err, ErrBusy / ErrNoAnswer / ErrRejected / ErrDialFailed)
//	defer rooms.Hangup(ctx, leg)                         // remove the callee, delete the room
//	agent.SetPeer(leg.Identity)                          // the identity LiveKit gave the callee
//	agent.WaitListening(ctx)                             // the callee hears us: greet now
//	agent.Player().Write(itemID, pcm)                    // the agent's voice, paced in real time
//	in := agent.Player().Clear()                         // barge-in: in.Played of in.Item was heard
//	<-agent.PeerLeft()                                   // the callee hung up
//
// The agent learns that the callee left from LiveKit's participant
// updates, which only name participants it already knew: wait for
// PeerAudio after the answer before relying on PeerLeft. The SIP service
// marks the callee's participant sip.callStatus=hangup before it leaves;
// PeerLeft closes on that mark too, and Rooms.HasParticipant counts such a
// participant gone, because the leave itself has been lost under load
// (LiveKit then held the seat of a callee who had hung up).
//
// The agent's voice is paced by one goroutine for the whole process (the
// pacer in player.go): every 20 ms it sends each live call's next frame,
// encoded with CELT (voiceenc.go). One goroutine and one timer for all
// calls, not one per call, because waking the process 50 times a second
// per call cost more than the sends; the price is that a Player's sink and
// its OnPlayback and OnSent callbacks must never block, or every call's
// voice waits.
//
// The callee's identity is the one LiveKit's reply to the dial names, not
// the one asked for. The agent joins before the dial, so until SetPeer it
// keeps the audio tracks others publish (the callee's may be subscribed
// before the reply arrives) and who left, and hands the peer's over then.
//
// LiveKit's SIP service reports the callee's final SIP response in the
// dial's error (a SIPStatus detail); outcome.go maps it, as checked
// against the real service in sip_test.go: 486 and 600 are busy, 480 and
// the ring timeout (no status, "sip request timed out", the phone saw
// CANCEL) no answer, 403 and 603 rejected, 404 and 5xx failed.
//
// Nothing here reads the environment; the worker maps its configuration
// into Config. Call SetSDKLogger once at startup so the SDK's logs go to
// the worker's logger rather than stderr.
//
// The phone network itself cannot run on a development machine: package
// sipphone is the carrier and the handset, a SIP user agent that LiveKit's
// SIP service dials over a trunk exactly as it dials a carrier, so the
// whole leg runs for real in tests and make dev (siptest gives each test
// its own phone and trunk). Package calleesim, a Dialer whose callee joins
// the room as a participant with no SIP leg, remains for the tests that do
// not need the leg.
package telephony
