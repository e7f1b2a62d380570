package call

import (
	"time"

	"github.com/docshield/voice-worker/internal/telephony"
)

// agentVoice follows the agent's voice from the model to the callee. The
// Player knows how much of each item it has sent; playout turns that into
// what the rest of the call needs, every loop tick and at every cut: the
// model's MarkPlayed (so a truncation lands where the callee stopped
// hearing), the recorder's AgentPlayed (so the recording has the agent
// where it was heard), and the agent audio usage. Confined to the loop.
type agentVoice struct {
	player voicePlayer
	sess   modelSession
	media  *media
	keep   bool // keep written audio until played, for the recorder

	items  []*playItem // written and not yet reported in full, oldest first
	played int         // samples reported played, all items
}

type playItem struct {
	id       string
	written  int     // samples written to the Player
	reported int     // samples reported played
	pcm      []int16 // written audio from off on is not yet reported (keep only)
	off      int
	startAt  time.Time // when its first sample was sent (PlaybackStarted)
}

// maxPlayItems bounds the bookkeeping; the Player remembers 16 items.
const maxPlayItems = 12

func newAgentVoice(player voicePlayer, sess modelSession, m *media) *agentVoice {
	return &agentVoice{player: player, sess: sess, media: m, keep: m.recording()}
}

// write queues agent audio for the callee.
func (p *agentVoice) write(item string, pcm []int16) error {
	if err := p.player.Write(item, pcm); err != nil {
		return err
	}
	it := p.find(item)
	if it == nil {
		if len(p.items) == maxPlayItems {
			p.report(p.items[0], p.items[0].written) // long gone by now
			p.items = p.items[1:]
		}
		it = &playItem{id: item}
		p.items = append(p.items, it)
	}
	it.written += len(pcm)
	if p.keep {
		it.pcm = append(it.pcm, pcm...)
	}
	return nil
}

// started notes when an item began to play.
func (p *agentVoice) started(ev telephony.PlaybackEvent) {
	if it := p.find(ev.Item); it != nil && it.startAt.IsZero() {
		it.startAt = ev.At
	}
}

// sync reports what the Player has sent since the last sync.
func (p *agentVoice) sync() {
	for _, it := range p.items {
		d, ok := p.player.Played(it.id)
		upto := it.written // forgotten by the Player: played long ago
		if ok {
			upto = min(durationSamples(d), it.written)
		}
		p.report(it, upto)
	}
	// Finished items go, except the newest, which may get more audio.
	keep := p.items[:0]
	for i, it := range p.items {
		if it.reported < it.written || i == len(p.items)-1 {
			keep = append(keep, it)
		}
	}
	clear(p.items[len(keep):])
	p.items = keep
}

// cut accounts for a Clear: items before the interrupted one played in
// full, the interrupted one up to in.Played, and the rest never will.
func (p *agentVoice) cut(in telephony.Cleared) {
	for _, it := range p.items {
		if it.id == in.Item {
			p.report(it, min(durationSamples(in.Played), it.written))
			break
		}
		p.report(it, it.written)
	}
	clear(p.items)
	p.items = p.items[:0]
}

func (p *agentVoice) report(it *playItem, upto int) {
	n := upto - it.reported
	if n <= 0 {
		return
	}
	p.sess.MarkPlayed(it.id, n)
	if p.keep && len(it.pcm)-it.off >= n {
		at := it.startAt.Add(samplesDuration(it.reported))
		if it.startAt.IsZero() {
			at = time.Now().Add(-samplesDuration(n))
		}
		chunk := make([]int16, n)
		copy(chunk, it.pcm[it.off:])
		it.off += n
		if it.off >= len(it.pcm)/2 { // amortized: each sample moves at most once more
			it.pcm = append(it.pcm[:0], it.pcm[it.off:]...)
			it.off = 0
		}
		p.media.agentPlayed(at, chunk)
	}
	it.reported = upto
	p.played += n
}

func (p *agentVoice) find(id string) *playItem {
	for i := len(p.items) - 1; i >= 0; i-- {
		if p.items[i].id == id {
			return p.items[i]
		}
	}
	return nil
}
