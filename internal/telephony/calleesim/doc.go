// Package calleesim is the phone network's stand-in for development and
// tests: a telephony.Dialer whose "callee" is a Go participant joining the
// call's real LiveKit room. It answers (or is busy, rejects, never picks
// up), speaks scripted audio (espeak-ng speech or tones), waits for the
// agent's turns, barges in, hangs up, and records what it heard with
// arrival times (package heard, shared with sipphone), so tests can check
// the agent's audio arrived and how fast it stopped.
//
// It is a test double, selected only by explicit configuration; NewDialer
// refuses to build when the caller says it is production.
//
//	d, _ := calleesim.NewDialer(cfg, calleesim.DialerOptions{
//		Script: func(req telephony.DialRequest) calleesim.Script {
//			return calleesim.Script{Steps: []calleesim.Step{
//				calleesim.WaitForAgentTurn(),
//				calleesim.Say(hello), // PCM from calleesim.Speech(ctx, "Hello?", 24000)
//				calleesim.WaitForAgentTurn(),
//				calleesim.HangUp(),
//			}}
//		},
//	})
//	defer d.Close()
package calleesim
