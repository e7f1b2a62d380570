package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/phone"
	"github.com/docshield/voice-worker/internal/store"
	"go.mongodb.org/mongo-driver/v2/bson"
)

const contactSynopsis = `contact show PHONE|CONTACT-ID [--json] [--timeout 30s]

Answers "they called me twice": the number's contacts in every campaign (or
the one contact), each with its campaign, every attempt (status, outcome,
the reason the worker recorded, when it was dialed and ended) and when the
next attempt is due; then the number's one-off calls and whether it is on
the do-not-call list. PHONE is E.164 or as people write it ("+1 415 555
0100"). Numbers are masked as in the logs.

Exit: 0 found, 1 nothing found or a failure, 2 bad usage.`

// ContactView is one contact as `contact show` prints it.
type ContactView struct {
	ContactID      string                 `json:"contact_id"`
	CampaignID     string                 `json:"campaign_id"`
	CampaignName   string                 `json:"campaign_name"`
	CampaignStatus store.CampaignStatus   `json:"campaign_status"`
	Status         store.ContactStatus    `json:"status"`
	Attempts       int                    `json:"attempts"`
	LastOutcome    string                 `json:"last_outcome,omitempty"`
	TimeZone       string                 `json:"time_zone,omitempty"`
	NextAttemptAt  time.Time              `json:"next_attempt_at,omitzero"`
	Next           string                 `json:"next"`
	Calls          []store.AttemptSummary `json:"calls"`
}

// DoNotCallView is the number's do-not-call entry.
type DoNotCallView struct {
	Since  time.Time `json:"since"`
	Source string    `json:"source,omitempty"`
	Reason string    `json:"reason,omitempty"`
}

// NumberView is everything `contact show` found for one number.
type NumberView struct {
	Phone       string                 `json:"phone"`
	DoNotCall   *DoNotCallView         `json:"do_not_call,omitempty"`
	Contacts    []ContactView          `json:"contacts"`
	InlineCalls []store.AttemptSummary `json:"one_off_calls"`
}

func cmdContact(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "contact", contactSynopsis)
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if code, done := parse(e, fs, args); done {
		return code
	}
	if fs.NArg() != 2 || fs.Arg(0) != "show" {
		fs.Usage()
		return 2
	}
	byID, idErr := bson.ObjectIDFromHex(fs.Arg(1))
	number, phoneErr := phone.Normalize(fs.Arg(1))
	if idErr != nil && phoneErr != nil {
		fmt.Fprintf(e.stderr, "worker contact show: give an E.164 number (+14155550100) or a contact id (24 hex characters): %v\n", phoneErr)
		return 2
	}
	return withStore(ctx, e, *timeout, func(ctx context.Context, st *store.Store) int {
		var contacts []store.Contact
		var err error
		if idErr == nil {
			c, err := st.GetContact(ctx, byID)
			if err != nil {
				fmt.Fprintf(e.stderr, "worker contact show: %v\n", timedOut(ctx, err, *timeout))
				return 1
			}
			contacts, number = []store.Contact{*c}, c.Phone
		} else if contacts, err = st.ContactsByPhone(ctx, number); err != nil {
			fmt.Fprintf(e.stderr, "worker contact show: %v\n", timedOut(ctx, err, *timeout))
			return 1
		}
		v, err := lookUpNumber(ctx, st, number, contacts)
		if err != nil {
			fmt.Fprintf(e.stderr, "worker contact show: %v\n", timedOut(ctx, err, *timeout))
			return 1
		}
		if len(v.Contacts) == 0 && len(v.InlineCalls) == 0 {
			fmt.Fprintf(e.stderr, "worker contact show: no contact and no call for %s\n", v.Phone)
			return 1
		}
		return exitCode(writeOut(e, *asJSON, v, v.writeText))
	})
}

// lookUpNumber gathers a number's contacts' campaigns and attempts, its
// one-off calls and its do-not-call entry.
func lookUpNumber(ctx context.Context, st *store.Store, number string, contacts []store.Contact) (NumberView, error) {
	v := NumberView{Phone: logging.MaskPhone(number), Contacts: []ContactView{}}
	dnc, err := st.GetDoNotCall(ctx, number)
	switch {
	case err == nil:
		v.DoNotCall = &DoNotCallView{Since: dnc.CreatedAt, Source: dnc.Source, Reason: dnc.Reason}
	case !errors.Is(err, store.ErrNotFound):
		return v, err
	}
	for _, c := range contacts {
		cv := ContactView{ContactID: c.ID.Hex(), CampaignID: c.CampaignID.Hex(), Status: c.Status, Attempts: c.Attempts,
			LastOutcome: c.LastOutcome, TimeZone: c.TimeZone, NextAttemptAt: c.NextAttemptAt}
		camp, err := st.GetCampaign(ctx, c.CampaignID)
		switch {
		case err == nil:
			cv.CampaignName, cv.CampaignStatus = camp.Name, camp.Status
		case !errors.Is(err, store.ErrNotFound):
			return v, err
		}
		if cv.Calls, err = st.AttemptsOfContact(ctx, c.ID); err != nil {
			return v, err
		}
		cv.Next = nextAttempt(cv, v.DoNotCall != nil, time.Now())
		v.Contacts = append(v.Contacts, cv)
	}
	if v.InlineCalls, err = st.InlineCallsByPhone(ctx, number); err != nil {
		return v, err
	}
	return v, nil
}

// nextAttempt says in words when the contact is called next, and why not
// when it never is.
func nextAttempt(c ContactView, listed bool, now time.Time) string {
	for _, a := range c.Calls {
		if !a.Status.Terminal() {
			return fmt.Sprintf("attempt %d is %s now", a.Attempt, a.Status)
		}
	}
	switch {
	case listed:
		return "never: the number is on the do-not-call list"
	case c.Status != store.ContactPending:
		return fmt.Sprintf("never: the contact is %s", c.Status)
	case c.CampaignStatus == "":
		return "never: its campaign does not exist"
	case c.CampaignStatus != store.CampaignRunning && c.CampaignStatus != store.CampaignScheduled:
		return fmt.Sprintf("not while the campaign is %s", c.CampaignStatus)
	case c.NextAttemptAt.After(now):
		return fmt.Sprintf("%s, or the first time after it inside its calling hours", stamp(c.NextAttemptAt))
	}
	return "due now: at the next dispatch round inside its calling hours"
}

func (v NumberView) writeText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "number %s: ", v.Phone)
	if v.DoNotCall != nil {
		fmt.Fprintf(&b, "on the do-not-call list since %s (%s)\n", stamp(v.DoNotCall.Since), v.DoNotCall.Source)
	} else {
		b.WriteString("not on the do-not-call list\n")
	}
	for _, c := range v.Contacts {
		fmt.Fprintf(&b, "\ncontact %s in campaign %s (%s), %s\n", c.ContactID, c.CampaignID, c.CampaignName, c.CampaignStatus)
		fmt.Fprintf(&b, "  status %s, %d attempts", c.Status, c.Attempts)
		if c.LastOutcome != "" {
			fmt.Fprintf(&b, ", last outcome %s", c.LastOutcome)
		}
		fmt.Fprintf(&b, "\n  next attempt: %s\n", c.Next)
		writeAttempts(&b, "  ", c.Calls)
	}
	if len(v.InlineCalls) > 0 {
		b.WriteString("\none-off calls to this number:\n")
		writeAttempts(&b, "  ", v.InlineCalls)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeAttempts prints attempts as a table, one line each.
func writeAttempts(w io.Writer, indent string, calls []store.AttemptSummary) {
	if len(calls) == 0 {
		fmt.Fprintf(w, "%s(no attempts yet)\n", indent)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%sattempt\tstatus\toutcome\tdialed\tended\treason\n", indent)
	for _, a := range calls {
		reason := a.EndReason
		if reason == "" {
			reason = a.Error
		}
		if reason == "" {
			reason = a.WaitingReason
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t%s\n", indent, a.ID, a.Status, orDash(a.Outcome), orDash(stampOrZero(a.DialingAt)),
			orDash(stampOrZero(a.EndedAt)), orDash(logging.RedactString(reason)))
	}
	_ = tw.Flush()
}

func stampOrZero(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return stamp(t)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
