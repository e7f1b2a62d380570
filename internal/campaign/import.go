package campaign

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/docshield/voice-worker/internal/agent"
	"github.com/docshield/voice-worker/internal/phone"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/tasks"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// Import limits: a contacts file is data from outside and must not be able
// to exhaust a one-off dyno's memory.
const (
	MaxImportRows = 200000
	MaxNameLen    = 200
	importBatch   = 1000
)

// Row is one good contact row of a contacts file.
type Row struct {
	// Line is the row's line number in the file (the header is line 1).
	Line      int
	Phone     string
	Name      string
	TimeZone  string
	Variables map[string]string
}

// RowError is a row that was skipped, and why. It never quotes the phone
// number: it is personal data, and the line number finds it.
type RowError struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

func (e RowError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// ErrBadFile marks a contacts file that cannot be imported at all (no
// header, no phone column, too many rows), as opposed to bad rows, which
// are skipped and reported.
var ErrBadFile = errors.New("contacts file cannot be imported")

// varName is a template variable name, as in the call:outbound contract.
var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// columns is where each known field sits in a file's header; -1 if absent.
type columns struct {
	phone, name, zone int
	vars              []int    // positions of variable columns
	varNames          []string // their names, in the same order
	n                 int      // number of columns
}

// headerAliases maps accepted header spellings to the fields they fill.
var headerAliases = map[string]string{
	"phone": "phone", "phone_number": "phone",
	"name":      "name",
	"time_zone": "time_zone", "timezone": "time_zone", "tz": "time_zone",
}

// parseHeader reads the header row: phone is required, name and time_zone
// optional, every other column is a template variable named by its header.
func parseHeader(h []string) (columns, error) {
	c := columns{phone: -1, name: -1, zone: -1, n: len(h)}
	seen := map[string]bool{}
	var errs []error
	for i, raw := range h {
		name := strings.TrimSpace(raw)
		if i == 0 {
			name = strings.TrimPrefix(name, "\uFEFF") // Excel's byte-order mark
		}
		key := strings.ToLower(name)
		if field, ok := headerAliases[key]; ok {
			key = field
		}
		if seen[key] {
			errs = append(errs, fmt.Errorf("column %d: %q appears twice", i+1, name))
			continue
		}
		seen[key] = true
		switch key {
		case "phone":
			c.phone = i
		case "name":
			c.name = i
		case "time_zone":
			c.zone = i
		default:
			if !varName.MatchString(name) {
				errs = append(errs, fmt.Errorf("column %d: %q is not a variable name (a letter or _ then letters, digits or _)", i+1, name))
				continue
			}
			c.vars = append(c.vars, i)
			c.varNames = append(c.varNames, name)
		}
	}
	if c.phone < 0 {
		errs = append(errs, errors.New("no phone column"))
	}
	if len(c.vars) > tasks.MaxVariables {
		errs = append(errs, fmt.Errorf("%d variable columns, at most %d allowed", len(c.vars), tasks.MaxVariables))
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("header (line 1): %w", err)
	}
	return c, nil
}

// ParseCSV reads a contacts file: a header row naming the columns (phone;
// optionally name and time_zone; any others are template variables), then
// one contact per row. Bad rows (a number that is not E.164, an unknown
// time zone, a phone that repeats an earlier row, a wrong number of fields)
// are returned as RowErrors by line number and left out; the error is for
// a file that cannot be read at all (bad header, too many rows).
func ParseCSV(r io.Reader) ([]Row, []RowError, error) { return parseCSV(r, nil, nil) }

// parseCSV is ParseCSV with a further check of each well-formed row (a
// non-empty answer is the reason the row is refused) and a call of
// onRecord after each record, with the number of records read.
func parseCSV(r io.Reader, check func(Row) string, onRecord func(records int)) ([]Row, []RowError, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // checked per row, so one bad row is not fatal
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil, errors.New("the file is empty: want a header row with a phone column")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("header: %w", err)
	}
	cols, err := parseHeader(header)
	if err != nil {
		return nil, nil, err
	}
	var rows []Row
	var bad []RowError
	firstLine := map[string]int{} // phone → line it first appeared on
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			bad = append(bad, RowError{Line: pe.StartLine, Reason: pe.Err.Error()})
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if onRecord != nil {
			onRecord(len(rows) + len(bad) + 1)
		}
		if len(rows)+len(bad) >= MaxImportRows {
			return nil, nil, fmt.Errorf("more than %d rows: split the file", MaxImportRows)
		}
		line, _ := cr.FieldPos(0)
		row, reason := parseRow(rec, cols, line)
		if reason == "" && check != nil {
			reason = check(row)
		}
		if reason == "" {
			if first, dup := firstLine[row.Phone]; dup {
				reason = fmt.Sprintf("phone repeats line %d", first)
			} else {
				firstLine[row.Phone] = line
			}
		}
		if reason != "" {
			bad = append(bad, RowError{Line: line, Reason: reason})
			continue
		}
		rows = append(rows, row)
	}
	return rows, bad, nil
}

// parseRow checks one record; a non-empty reason means it is skipped.
func parseRow(rec []string, c columns, line int) (Row, string) {
	if len(rec) != c.n {
		return Row{}, fmt.Sprintf("has %d fields, the header has %d", len(rec), c.n)
	}
	for _, f := range rec {
		if !utf8.ValidString(f) {
			return Row{}, "is not valid UTF-8"
		}
	}
	row := Row{Line: line}
	rawPhone := strings.TrimSpace(rec[c.phone])
	if rawPhone == "" {
		return Row{}, "phone is empty"
	}
	var err error
	if row.Phone, err = phone.Normalize(rawPhone); err != nil {
		return Row{}, "phone: " + err.Error()
	}
	if c.name >= 0 {
		row.Name = strings.TrimSpace(rec[c.name])
		if n := utf8.RuneCountInString(row.Name); n > MaxNameLen {
			return Row{}, fmt.Sprintf("name is %d characters, at most %d allowed", n, MaxNameLen)
		}
	}
	if c.zone >= 0 {
		row.TimeZone = strings.TrimSpace(rec[c.zone])
		if row.TimeZone != "" {
			if _, err := LoadZone(row.TimeZone); err != nil {
				return Row{}, "time_zone: " + err.Error()
			}
		}
	}
	for i, pos := range c.vars {
		v := strings.TrimSpace(rec[pos])
		if v == "" {
			continue
		}
		if err := agent.CheckVariable(c.varNames[i], v); err != nil {
			var long *agent.VariableTooLongError
			if errors.As(err, &long) {
				return Row{}, fmt.Sprintf("%s is %d characters, at most %d allowed", long.Name, long.Len, agent.MaxVariableLen)
			}
			return Row{}, err.Error()
		}
		if row.Variables == nil {
			row.Variables = map[string]string{}
		}
		row.Variables[c.varNames[i]] = v
	}
	return row, ""
}

// ImportReport says what an import did.
type ImportReport struct {
	CampaignID string `json:"campaign_id"`
	// Imported contacts are new; AlreadyPresent ones were in the campaign
	// already (same phone) and were left as they were.
	Imported       int        `json:"imported"`
	AlreadyPresent int        `json:"already_present"`
	Bad            []RowError `json:"bad_rows"`
	// DryRun: the file was checked, nothing was written.
	DryRun bool `json:"dry_run,omitempty"`
}

// WriteText prints the report for a person.
func (r ImportReport) WriteText(w io.Writer) error {
	verb := "imported"
	if r.DryRun {
		verb = "would import (dry run)"
	}
	if _, err := fmt.Fprintf(w, "campaign %s: %s %d contacts, %d already present, %d bad rows skipped\n",
		r.CampaignID, verb, r.Imported, r.AlreadyPresent, len(r.Bad)); err != nil {
		return err
	}
	for _, b := range r.Bad {
		if _, err := fmt.Fprintf(w, "  %s\n", b.Error()); err != nil {
			return err
		}
	}
	return nil
}

// Import adds a contacts file's good rows to a campaign as pending
// contacts and reports the bad rows. A row is bad when it is malformed
// (ParseCSV) or when it could never be called: its number has no known
// time zone, the campaign's hours in its zone never meet 08:00–21:00 where
// the number rings, or the campaign's prompt cannot be rendered with its
// variables (a missing or too long value), which would fail every attempt
// before dialing. Contacts already in the campaign (same phone) are left
// untouched, so importing a file twice, or a file that grew, adds only
// what is new. Completed and cancelled campaigns refuse imports. With
// dryRun nothing is written.
//
// A long import reports its progress through WithProgress.
func (s *Service) Import(ctx context.Context, campaignID bson.ObjectID, r io.Reader, dryRun bool, opts ...ImportOption) (ImportReport, error) {
	var o importOptions
	for _, opt := range opts {
		opt(&o)
	}
	rep := ImportReport{CampaignID: campaignID.Hex(), DryRun: dryRun}
	c, err := s.store.GetCampaign(ctx, campaignID)
	if err != nil {
		return rep, err
	}
	if c.Status == store.CampaignCompleted || c.Status == store.CampaignCancelled {
		return rep, fmt.Errorf("campaign %s is %s: it takes no new contacts", campaignID.Hex(), c.Status)
	}
	extra, err := s.store.GetAgentCallSettings(ctx, campaignID)
	if err != nil {
		return rep, err
	}
	in := &countingReader{r: r}
	rows, bad, err := parseCSV(in, callable(c, extra, s.now()), func(records int) {
		if records%progressEvery == 0 {
			o.report(ImportProgress{Phase: PhaseCheck, Done: in.n, Total: o.size, Rows: records})
		}
	})
	if err != nil {
		return rep, fmt.Errorf("%w: %w", ErrBadFile, err)
	}
	rep.Bad = bad
	o.report(ImportProgress{Phase: PhaseCheck, Done: in.n, Total: max(o.size, in.n), Rows: len(rows) + len(bad)})
	if dryRun {
		rep.Imported = len(rows)
		return rep, nil
	}
	now := s.now()
	for start := 0; start < len(rows); start += importBatch {
		batch := rows[start:min(start+importBatch, len(rows))]
		contacts := make([]store.Contact, len(batch))
		for i, row := range batch {
			contacts[i] = store.Contact{
				CampaignID: campaignID, Phone: row.Phone, Name: row.Name, TimeZone: row.TimeZone,
				Variables: row.Variables, Status: store.ContactPending, CreatedAt: now, UpdatedAt: now,
			}
		}
		inserted, dups, err := s.store.InsertContacts(ctx, contacts)
		rep.Imported += inserted
		rep.AlreadyPresent += dups
		if err != nil {
			return rep, err
		}
		o.report(ImportProgress{Phase: PhaseWrite, Done: int64(start + len(batch)), Total: int64(len(rows)), Rows: len(rows) + len(bad)})
	}
	return rep, nil
}

// Import phases, in order.
const (
	// PhaseCheck reads and checks the file's rows; Done and Total are
	// bytes (Total is 0 when the size is not known, as for a pipe).
	PhaseCheck = "check"
	// PhaseWrite inserts the good rows; Done and Total are rows.
	PhaseWrite = "write"
)

// progressEvery is how many records the check phase reads between reports.
const progressEvery = 1000

// ImportProgress is how far an import is. It is reported every
// progressEvery rows while checking, after every batch while writing, and
// once when each phase ends.
type ImportProgress struct {
	Phase string
	Done  int64
	Total int64
	// Rows is the number of rows read so far.
	Rows int
}

// ImportOption changes how Import runs.
type ImportOption func(*importOptions)

type importOptions struct {
	progress func(ImportProgress)
	size     int64
}

// WithProgress makes Import call fn as it goes; size is the file's length
// in bytes, 0 when not known. fn runs on Import's goroutine.
func WithProgress(fn func(ImportProgress), size int64) ImportOption {
	return func(o *importOptions) { o.progress, o.size = fn, size }
}

func (o *importOptions) report(p ImportProgress) {
	if o.progress != nil {
		o.progress(p)
	}
}

// countingReader counts the bytes read through it, for the check phase's
// progress.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// callable is Import's check that a row could ever be called: everything
// about the row that would stop every one of its attempts before dialing.
func callable(c *store.Campaign, extra store.AgentCallSettings, now time.Time) func(Row) string {
	templates := []struct{ name, text string }{
		{"instructions", c.Agent.InstructionsTemplate},
		{"greeting", c.Agent.Greeting},
		{"voicemail message", extra.VoicemailMessage},
	}
	// An invalid campaign is reported by every dispatch round; its rows
	// are checked for what does not depend on its settings.
	p, planErr := planFor(c)
	return func(row Row) string {
		if _, err := phone.Zones(row.Phone); err != nil {
			return "phone: " + err.Error() + ", so it could never be called inside calling hours"
		}
		if planErr == nil {
			w, err := p.cal.ContactWindow(row.TimeZone, row.Phone)
			if err != nil {
				return err.Error()
			}
			if _, ok := w.unbounded().NextOpen(now); !ok {
				return "time_zone: the campaign's calling hours there never fall inside 08:00–21:00 where the number rings"
			}
		}
		for _, t := range templates {
			if t.text == "" {
				continue
			}
			if _, err := agent.Render(t.text, row.Variables); err != nil {
				return "could never be called: " + t.name + ": " + err.Error()
			}
		}
		return ""
	}
}
