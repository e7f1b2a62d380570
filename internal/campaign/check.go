package campaign

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/phone"
	"github.com/docshield/voice-worker/internal/store"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// MaxListedProblems bounds the contacts a check lists one by one; all of
// them are counted.
const MaxListedProblems = 200

// CheckReport is what `worker campaign check` found: documents the worker
// cannot read as the backend meant them, and due contacts dispatch would
// skip, each with what it means for the campaign.
type CheckReport struct {
	CampaignID string               `json:"campaign_id"`
	Name       string               `json:"name"`
	Status     store.CampaignStatus `json:"status"`
	// Campaign lists the campaign document's own problems; while it has
	// any, no contact is dispatched.
	Campaign []string `json:"campaign_problems"`
	// Contacts is how many contact documents were read.
	Contacts int `json:"contacts"`
	// ContactsWithProblems counts contacts with at least one problem;
	// ByProblem counts problems by field.
	ContactsWithProblems int            `json:"contacts_with_problems"`
	ByField              map[string]int `json:"problems_by_field"`
	// Problems lists the first MaxListedProblems contacts' problems.
	Problems []ContactProblem `json:"problems"`
}

// ContactProblem is one problem of one contact. The phone is masked.
type ContactProblem struct {
	ContactID string `json:"contact_id"`
	Phone     string `json:"phone,omitempty"`
	Field     string `json:"field"`
	Problem   string `json:"problem"`
	// Effect says what the worker does with the contact because of it.
	Effect string `json:"effect"`
}

// Clean reports whether the check found nothing.
func (r CheckReport) Clean() bool { return len(r.Campaign) == 0 && r.ContactsWithProblems == 0 }

// Effects of a problem on a contact.
const (
	effectInvisible  = "invisible to the worker: never dispatched, not in stats"
	effectIgnored    = "ignored: never dispatched"
	effectNeverDue   = "never due: never dispatched"
	effectUndecoded  = "the worker cannot read the contact: never dispatched"
	effectRefused    = "a validator refuses writes like it (worker migrate)"
	effectNoZone     = "its calling hours cannot be known: never dispatched"
	effectExhausted  = "finished as exhausted (no_time_zone) when due"
	effectNoCampaign = "no contact of the campaign is dispatched until the campaign is fixed"
)

// fieldEffects are the effects of a wrong type or value in the fields
// dispatch selects by; a wrong field elsewhere is undecodable or merely
// refused, which Check tells apart by decoding.
var fieldEffects = map[string]string{
	"campaign_id":     effectInvisible,
	"status":          effectIgnored,
	"next_attempt_at": effectNeverDue,
	"time_zone":       effectNeverDue,
}

// Check reads a campaign and every contact filed under it (including
// those whose campaign_id is the campaign's id as a string) and reports
// what is mistyped or unreachable: the fields the contacts validator
// (schemas/mongodb) refuses, campaign settings dispatch refuses, and due
// contacts dispatch would skip (an unknown time zone, a number without
// one). It changes nothing.
func (s *Service) Check(ctx context.Context, id bson.ObjectID, contacts ContactReader) (CheckReport, error) {
	rep := CheckReport{CampaignID: id.Hex(), ByField: map[string]int{}}
	c, err := s.store.GetCampaign(ctx, id)
	if err != nil {
		return rep, err
	}
	rep.Name, rep.Status = c.Name, c.Status
	raw, err := contacts.GetCampaignDocument(ctx, id)
	if err != nil {
		return rep, err
	}
	campaignSchema, err := store.LoadSchema(store.CollCampaigns)
	if err != nil {
		return rep, err
	}
	contactSchema, err := store.LoadSchema(store.CollContacts)
	if err != nil {
		return rep, err
	}
	for _, v := range campaignSchema.Check(raw) {
		rep.Campaign = append(rep.Campaign, v.String())
	}
	p, planErr := planFor(c)
	if planErr != nil {
		rep.Campaign = append(rep.Campaign, planErr.Error()+": "+effectNoCampaign)
	}
	zones := map[string]error{}
	err = contacts.EachCampaignContact(ctx, id, func(doc bson.Raw) error {
		rep.Contacts++
		found := contactProblems(doc, contactSchema)
		if planErr == nil {
			found = append(found, unreachable(doc, p, zones)...)
		}
		if len(found) == 0 {
			return nil
		}
		rep.ContactsWithProblems++
		for _, f := range found {
			rep.ByField[f.Field]++
			if len(rep.Problems) < MaxListedProblems {
				rep.Problems = append(rep.Problems, f)
			}
		}
		return nil
	})
	return rep, err
}

// ContactReader reads documents as stored, mistyped ones included;
// *store.Store implements it.
type ContactReader interface {
	GetCampaignDocument(ctx context.Context, id bson.ObjectID) (bson.Raw, error)
	EachCampaignContact(ctx context.Context, campaignID bson.ObjectID, fn func(bson.Raw) error) error
}

var _ ContactReader = (*store.Store)(nil)

// contactProblems lists a contact's violations of its schema, each with
// its effect.
func contactProblems(doc bson.Raw, sch *store.Schema) []ContactProblem {
	id, masked := contactIdentity(doc)
	var c store.Contact
	decodeErr := bson.Unmarshal(doc, &c)
	var out []ContactProblem
	for _, v := range sch.Check(doc) {
		top, _, _ := strings.Cut(v.Field, ".")
		effect, ok := fieldEffects[top]
		switch {
		case ok:
		case decodeErr != nil:
			effect = effectUndecoded
		default:
			effect = effectRefused
		}
		problem := v.Problem
		if top == "campaign_id" && doc.Lookup("campaign_id").Type == bson.TypeString {
			problem = "is the campaign's id as a string, want an ObjectId"
		}
		out = append(out, ContactProblem{ContactID: id, Phone: masked, Field: v.Field, Problem: problem, Effect: effect})
	}
	return out
}

// unreachable lists what would make dispatch skip a well-typed pending
// contact for good: a time zone it cannot load, or a number whose zones
// are unknown.
func unreachable(doc bson.Raw, p plan, zones map[string]error) []ContactProblem {
	var c store.Contact
	if err := bson.Unmarshal(doc, &c); err != nil || c.Status != store.ContactPending || !phone.Valid(c.Phone) {
		return nil
	}
	id, masked := contactIdentity(doc)
	if c.TimeZone != "" {
		err, seen := zones[c.TimeZone]
		if !seen {
			_, err = LoadZone(c.TimeZone)
			zones[c.TimeZone] = err
		}
		if err != nil {
			return []ContactProblem{{ContactID: id, Phone: masked, Field: "time_zone", Problem: err.Error(), Effect: effectNoZone}}
		}
	}
	if _, err := p.cal.ContactWindow(c.TimeZone, c.Phone); err != nil {
		return []ContactProblem{{ContactID: id, Phone: masked, Field: "phone", Problem: err.Error(), Effect: effectExhausted}}
	}
	return nil
}

// contactIdentity is a contact's id and masked phone, whatever their types.
func contactIdentity(doc bson.Raw) (id, maskedPhone string) {
	v := doc.Lookup("_id")
	if oid, ok := v.ObjectIDOK(); ok {
		id = oid.Hex()
	} else {
		id = v.String()
	}
	if p, ok := doc.Lookup("phone").StringValueOK(); ok {
		maskedPhone = logging.MaskPhone(p)
	}
	return id, maskedPhone
}

// WriteText prints the report for a person.
func (r CheckReport) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "campaign\t%s (%s), %s\n", r.CampaignID, r.Name, r.Status)
	if len(r.Campaign) == 0 {
		fmt.Fprintf(tw, "campaign document\tok\n")
	}
	for _, p := range r.Campaign {
		fmt.Fprintf(tw, "campaign document\t%s\n", p)
	}
	fmt.Fprintf(tw, "contacts\t%d checked, %d with problems\n", r.Contacts, r.ContactsWithProblems)
	for _, f := range slices.Sorted(maps.Keys(r.ByField)) {
		fmt.Fprintf(tw, "  %s\t%d\n", f, r.ByField[f])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, p := range r.Problems {
		fmt.Fprintf(tw, "%s\t%s\t%s: %s\t%s\n", p.ContactID, p.Phone, p.Field, p.Problem, p.Effect)
	}
	if n := sumValues(r.ByField) - len(r.Problems); n > 0 {
		fmt.Fprintf(tw, "… and %d more problems (see --json for the counts)\n", n)
	}
	return tw.Flush()
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
