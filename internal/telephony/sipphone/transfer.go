package sipphone

import (
	"context"
	"fmt"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"
)

// refer answers a REFER on this call the way a carrier does (RFC 3515):
// 202 Accepted, then NOTIFYs carrying the transfer's progress as
// message/sipfrag, then BYE once the target answered. livekit-sip waits
// for that final NOTIFY before TransferSIPParticipant returns. It runs on
// the SIP server's goroutine for the request; the NOTIFYs go out on a
// goroutine of the call.
func (c *Call) refer(req *sip.Request, tx sip.ServerTransaction) {
	c.event(false, sip.REFER, 0)
	reply := func(status int, reason string) {
		c.delay()
		if err := tx.Respond(sip.NewResponseFromRequest(req, status, reason, nil)); err == nil {
			c.event(true, sip.REFER, status)
		}
	}
	// A REFER may overtake the ACK of our 200: reading it first would
	// advance the dialog's CSeq past the ACK's, which then never confirms.
	ctx, cancel := context.WithTimeout(context.Background(), byeTimeout)
	rec, _ := c.Wait(ctx, func(r Record) bool { return !r.Answered.IsZero() || !r.Ended.IsZero() })
	cancel()
	c.mu.Lock()
	d, t := c.dialog, c.transfer
	c.mu.Unlock()
	target := req.GetHeader("Refer-To")
	switch {
	case d == nil || rec.Answered.IsZero():
		reply(sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	case target == nil:
		reply(sip.StatusBadRequest, "Bad Request") // RFC 3515 2.4.1: exactly one Refer-To
		return
	case d.ReadRequest(req, tx) != nil:
		reply(sip.StatusInternalServerError, "Server Internal Error") // CSeq out of order (RFC 3261 12.2.2)
		return
	}
	var i int
	c.update(func(r *Record) {
		i = len(r.Transfers)
		r.Transfers = append(r.Transfers, Transferred{At: time.Now(), Target: target.Value(), Status: t.Refuse})
	})
	if t.Refuse != 0 {
		reply(t.Refuse, reasonPhrase(t.Refuse))
		return
	}
	reply(sip.StatusAccepted, "Accepted")
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dialog == nil {
		return // the call ended meanwhile
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.completeTransfer(d, req, i, t.Result)
	}()
}

// completeTransfer reports the transfer's progress and, once it
// succeeded, ends the phone's own leg.
func (c *Call) completeTransfer(d *diago.DialogServerSession, refer *sip.Request, i int, result int) {
	if result == 0 {
		result = sip.StatusOK
	}
	to := d.RemoteContact().Address
	if ct := refer.Contact(); ct != nil {
		to = ct.Address
	}
	err := c.notify(d, to, sip.StatusTrying, "active;expires=60")
	if err == nil {
		err = c.notify(d, to, result, "terminated;reason=noresource")
	}
	if err != nil {
		c.log.Warn("sipphone.notify_failed", zap.Error(err))
		return
	}
	c.update(func(r *Record) { r.Transfers[i].Status = result })
	if result/100 == 2 {
		c.hangUp("transferred")
	}
}

// notify sends one in-dialog NOTIFY for the REFER subscription.
func (c *Call) notify(d *diago.DialogServerSession, to sip.Uri, status int, state string) error {
	req := sip.NewRequest(sip.NOTIFY, to)
	req.AppendHeader(sip.NewHeader("Event", "refer"))
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	req.AppendHeader(sip.NewHeader("Content-Type", "message/sipfrag;version=2.0"))
	req.SetBody(fmt.Appendf(nil, "SIP/2.0 %d %s", status, reasonPhrase(status)))
	ctx, cancel := context.WithTimeout(context.Background(), byeTimeout)
	defer cancel()
	c.event(true, sip.NOTIFY, 0)
	res, err := d.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("NOTIFY %d: %w", status, err)
	}
	if !res.IsSuccess() {
		return fmt.Errorf("NOTIFY %d answered %d %s", status, res.StatusCode, res.Reason)
	}
	return nil
}
