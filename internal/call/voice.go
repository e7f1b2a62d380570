package call

import (
	"github.com/docshield/voice-worker/internal/telephony"
)

// agentVoice follows the agent's voice from the model to the callee. The
// Player knows how much of each item it has sent; playout turns that into
// what the rest of the call needs, every loop tick and at every cut: the
// model's MarkPlayed (so a truncation lands where the callee stopped
// hearing) and the agent audio usage. (The recording takes the packets the
// Player sent straight from its pacing goroutine: media.agentPacket.)
// Confined to the loop.
type agentVoice struct {
	player voicePlayer
	sess   modelSession

	items  []*playItem // written and not yet reported in full, oldest first
	played int         // samples reported played, all items
}

type playItem struct {
	id       string
	written  int // samples written to the Player
	reported int // samples reported played
}

// maxPlayItems bounds the bookkeeping; the Player remembers 16 items.
const maxPlayItems = 12

func newAgentVoice(player voicePlayer, sess modelSession) *agentVoice {
	return &agentVoice{player: player, sess: sess}
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
	return nil
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
