package realtime

// Barge-in support. The caller owns playout (it knows what reached the
// callee); the session knows which assistant item each piece of audio
// belongs to and how much of it arrived. Together they give the truncation
// point the API asks for: audio "sent to the client but not yet played" is
// cut so the model's context matches what the callee heard
// (https://developers.openai.com/api/reference/resources/realtime/client-events,
// conversation.item.truncate).

// keepItems bounds the bookkeeping: only recent items can still be playing.
const keepItems = 8

type itemAudio struct {
	id         string
	responseID string
	received   int // samples
	played     int // samples
	done       bool
	truncated  bool
}

// assistantItems tracks recent assistant audio items, newest last. Guarded by
// Session.mu.
type assistantItems struct {
	items []*itemAudio
}

func (p *assistantItems) find(id string) *itemAudio {
	for i := len(p.items) - 1; i >= 0; i-- {
		if p.items[i].id == id {
			return p.items[i]
		}
	}
	return nil
}

func (p *assistantItems) newest() *itemAudio {
	if len(p.items) == 0 {
		return nil
	}
	return p.items[len(p.items)-1]
}

// onDelta accounts for a delta and reports whether to deliver it: deltas for
// an item already truncated are past the cut and must not be played.
func (p *assistantItems) onDelta(itemID, responseID string, n int) bool {
	it := p.find(itemID)
	if it == nil {
		it = &itemAudio{id: itemID, responseID: responseID}
		p.items = append(p.items, it)
		if len(p.items) > keepItems {
			p.items = append(p.items[:0], p.items[len(p.items)-keepItems:]...)
		}
	}
	if it.truncated {
		return false
	}
	it.received += n
	return true
}

func (p *assistantItems) onDone(itemID string) {
	if it := p.find(itemID); it != nil {
		it.done = true
	}
}

// AssistantAudio describes one assistant item's audio.
type AssistantAudio struct {
	ItemID     string
	ResponseID string
	ReceivedMS int  // agent audio that arrived for the item
	PlayedMS   int  // agent audio the caller reported played (MarkPlayed)
	Done       bool // no more audio will come for the item
	Truncated  bool // Interrupt already cut it
}

func (it *itemAudio) view() AssistantAudio {
	if it == nil {
		return AssistantAudio{}
	}
	return AssistantAudio{ItemID: it.id, ResponseID: it.responseID, ReceivedMS: SamplesToMS(it.received),
		PlayedMS: SamplesToMS(it.played), Done: it.done, Truncated: it.truncated}
}

// AssistantAudio returns the bookkeeping of the newest assistant item whose
// audio arrived, or of itemID when given.
func (s *Session) AssistantAudio(itemID ...string) AssistantAudio {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(itemID) > 0 {
		return s.play.find(itemID[0]).view()
	}
	return s.play.newest().view()
}

// MarkPlayed records that samples more of itemID's audio reached the callee.
// Reports for items the session no longer tracks are ignored.
func (s *Session) MarkPlayed(itemID string, samples int) {
	if samples <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if it := s.play.find(itemID); it != nil {
		it.played = min(it.played+samples, it.received)
	}
}

// Truncation says where Interrupt cut an item's audio. A zero value means
// there was nothing unheard to cut.
type Truncation struct {
	ItemID     string
	PlayedMS   int // the truncation point sent to the server
	ReceivedMS int
}

// Interrupt handles barge-in on the session side: it truncates itemID (the
// item the caller is playing; "" means the newest item) at what the caller
// reported played, and discards later deltas of that item not yet read from
// the socket. Deltas already waiting in Events are not recalled; the caller
// drops those by ItemID. The caller stops its own playout first, and may
// also call CancelResponse when the server is not set to interrupt itself.
// Interrupting an item that was heard in full, or twice, does nothing.
func (s *Session) Interrupt(itemID string) (Truncation, error) {
	s.mu.Lock()
	it := s.play.newest()
	if itemID != "" {
		it = s.play.find(itemID)
	}
	if it == nil || it.truncated || (it.done && it.played >= it.received) {
		s.mu.Unlock()
		return Truncation{}, nil
	}
	it.truncated = true
	in := Truncation{ItemID: it.id, PlayedMS: SamplesToMS(it.played), ReceivedMS: SamplesToMS(it.received)}
	s.mu.Unlock()
	return in, s.Truncate(in.ItemID, in.PlayedMS)
}
