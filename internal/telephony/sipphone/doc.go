// Package sipphone is the phone network's far end for development and
// tests: a SIP user agent on loopback that plays a carrier trunk and the
// handset behind it. LiveKit's SIP service (livekit-sip) dials it exactly
// as it dials a carrier, so the whole production leg runs for real:
// CreateSIPParticipant → livekit-sip → INVITE → this phone → G.711 over
// RTP → the room.
//
//	p, _ := sipphone.Start(sipphone.Config{
//		Addr: "127.0.0.1:5070",                                        // the trunk's address
//		Auth: &sipphone.Auth{Username: "trunk", Password: secret},     // the trunk's credentials
//		Default: sipphone.Talk(hello),                                 // PCM at 8 kHz, e.g. calleesim.Speech(ctx, "Hello?", sipphone.SampleRate)
//	})
//	defer p.Close()
//	p.Handle("+15550100002", sipphone.Busy())                         // per dialed number
//	p.Handle("+15550100003", sipphone.Voicemail(greeting))
//	call, _ := p.WaitCall(ctx, "+15550100003")                        // the next call to that number
//	<-call.Done()
//	rec := call.Record()                                               // SIP events, auth, times, who hung up, digits, REFER target, marks
//	beepEnd, _ := rec.Mark(sipphone.MarkBeepEnd)
//	spans := call.Heard().Spans(200 * time.Millisecond)                // the agent's speech as the phone heard it
//	lateBy := spans[0].Start.Sub(beepEnd)
//
// # What livekit-sip sends, and how the phone answers
//
// From livekit/sip's source (pkg/sip/outbound.go, protocol.go, media-sdk):
//   - The offer lists G722, PCMU, PCMA and telephone-event/8000 (payload
//     101, events 0-16), 20 ms ptime. The phone answers with exactly one
//     G.711 law (the script's Codec, PCMU by default) and telephone-event,
//     and refuses an offer without that law with 488.
//   - Digest authentication: livekit-sip answers 401 (WWW-Authenticate,
//     Authorization) and 407 (Proxy-Authenticate, Proxy-Authorization),
//     up to five times, digesting the To URI. The phone challenges with
//     either (Auth.Proxy), MD5 with qop=auth, checks the answer against the
//     digest URI the caller used, and refuses wrong credentials with 403.
//     The challenged INVITE and its retry share a Call-ID: one Call.
//   - DTMF goes only as RFC 4733 telephone-events in the RTP stream (in-band
//     tones only with livekit-sip's audio_dtmf option); never SIP INFO,
//     which the phone leaves to diago (406). The phone records each key
//     when its first event packet arrives, and when its end packet does.
//   - A transfer is a REFER whose Refer-To is TransferSIPParticipant's
//     transfer_to. livekit-sip waits for 202 and then for a NOTIFY (Event:
//     refer) whose message/sipfrag body carries the final status; it hangs
//     up itself a second after a 200 unless the far end's BYE comes first.
//     The phone answers 202, NOTIFYs 100 then the script's result, and after
//     a 2xx result ends its own leg with BYE, as a carrier does.
//   - A ring timeout is a CANCEL (the transaction layer answers 200 and the
//     INVITE 487); hang-ups are BYE either way.
//   - Responses to INVITEs and REFERs go out after Config.Latency (10 ms),
//     as over a real network. On loopback an instant response sometimes
//     reached livekit-sip before its client transaction had finished
//     starting (livekit/sipgo sets its completion timer after sending),
//     and the transaction then ended without passing the response on: about
//     one transfer in twenty failed with "transaction failed to complete".
//   - CutMedia stops the phone's RTP with the call still up (a callee
//     whose network failed): livekit-sip then sends nothing into the room
//     until its own media timeout (15 s).
//
// Named builds the scripts by name that cmd/sipphone serves (make dev's
// phone is "talk", TalkLines a turn each).
//
// # Invariants
//
// The goroutine serving a call's INVITE owns the call: it rings, refuses or
// answers, runs the script and tears the call down. The call's listener
// (RTP in) and speaker (RTP out) goroutines, and the one completing a
// transfer, belong to it; Done closes only after all of them ended, so a
// test that waited for Done reads a final Record. Everything observed goes
// into the Record under one lock and is read as copies. Events are kept in
// time order, each stamped when it happened (a final response is known to
// be sent only once acknowledged). The speaker sends a packet every 20 ms
// for the whole call, silence between utterances, as a handset does.
// Heard audio is placed by RTP timestamp, not by arrival, so positions are
// the sender's clock and a lost packet is a gap where it belongs; the
// recording itself is package heard's, shared with calleesim.
//
// It is a test double: nothing in the worker imports it. sipgo carries the
// SIP transactions and dialogs and diago the SDP and RTP sessions; this
// package adds the carrier's behaviour and the record.
package sipphone
