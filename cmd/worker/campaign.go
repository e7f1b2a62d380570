package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/docshield/voice-worker/internal/campaign"
	"github.com/docshield/voice-worker/internal/config"
	"go.mongodb.org/mongo-driver/v2/bson"
)

const campaignSynopsis = `campaign import --campaign ID --file contacts.csv [--dry-run] [--json] [--progress auto]
       worker campaign pause|resume|cancel ID [--json]
       worker campaign stats ID [--recount] [--json]
       worker campaign check ID [--json]

import   adds a CSV's contacts to a campaign. The header row names the columns:
         phone (E.164, e.g. +14155550100; spaces, dashes, dots and brackets are
         removed, 00 is read as +), optionally name and time_zone (IANA, e.g.
         America/New_York; empty means the campaign's default), and any other
         column is a template variable named by its header. Bad rows are
         reported by line number and skipped; contacts already in the campaign
         (same phone) are left as they are, so importing twice adds nothing.
pause    stops dispatching; calls in progress finish, queued ones are not dialed.
resume   makes a paused campaign scheduled again; the next round starts it.
cancel   ends the campaign for good and cancels its queued attempts.
         Progress goes to stderr: a bar on a terminal, a line every tenth
         otherwise (heroku run --no-tty ... --file - < contacts.csv).
stats    contacts by status, attempts by status and outcome, answer rate and
         the dashboard counters, as last counted (running campaigns are
         counted every minute); --recount counts now.
check    lists contacts the worker cannot read as meant (a field of the wrong
         type: next_attempt_at as a string, campaign_id as a string, an
         unknown status) or would never dispatch (an unknown time zone), and
         problems of the campaign document, each with its effect.

Exit: 0 done, 1 failure, 2 bad usage or a file that cannot be imported,
3 imported but some rows were skipped, or check found problems.`

func cmdCampaign(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "campaign", campaignSynopsis)
	campaignID := fs.String("campaign", "", "campaign id (import)")
	file := fs.String("file", "", `contacts CSV file (import; "-" reads stdin)`)
	dryRun := fs.Bool("dry-run", false, "import: check the file and report, write nothing")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	recount := fs.Bool("recount", false, "stats: count now instead of reading the last count")
	progress := fs.String("progress", "auto", "import: auto (a bar on a terminal, else lines), bar, lines or none")
	timeout := fs.Duration("timeout", 0, "give up after this long (default 10m for import and check, 2m for stats, 30s otherwise)")
	if code, done := parse(e, fs, args); done {
		return code
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	sub, rest := fs.Arg(0), fs.Args()[1:]
	var rawID string
	switch sub {
	case "import":
		if len(rest) != 0 || *campaignID == "" || *file == "" {
			fmt.Fprintln(e.stderr, "worker campaign import: --campaign and --file are required")
			return 2
		}
		rawID = *campaignID
	case "pause", "resume", "cancel", "stats", "check":
		if len(rest) != 1 {
			fmt.Fprintf(e.stderr, "worker campaign %s: give one campaign id\n", sub)
			return 2
		}
		rawID = rest[0]
	default:
		fmt.Fprintf(e.stderr, "worker campaign: unknown subcommand %q\n\n", sub)
		fs.Usage()
		return 2
	}
	id, err := bson.ObjectIDFromHex(rawID)
	if err != nil {
		fmt.Fprintf(e.stderr, "worker campaign %s: %q is not a campaign id (24 hex characters)\n", sub, rawID)
		return 2
	}

	mc, err := config.LoadMongo(e.lookup)
	if err != nil {
		return configError(e, err)
	}
	if *timeout <= 0 {
		switch sub {
		case "import", "check":
			*timeout = 10 * time.Minute // up to campaign.MaxImportRows rows
		case "stats":
			*timeout = 2 * time.Minute // a recount reads every contact and call
		default:
			*timeout = 30 * time.Second
		}
	}
	render, err := progressRenderer(e.stderr, *progress)
	if err != nil {
		fmt.Fprintf(e.stderr, "worker campaign: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	st, err := openStore(ctx, mc)
	if err != nil {
		fmt.Fprintf(e.stderr, "worker campaign %s: %v\n", sub, timedOut(ctx, err, *timeout))
		return 1
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = st.Close(closeCtx)
	}()
	svc := campaign.New(st, nil, campaign.Options{})

	fail := func(err error) int {
		fmt.Fprintf(e.stderr, "worker campaign %s: %v\n", sub, err)
		return 1
	}
	switch sub {
	case "import":
		// Idempotent re-imports rest on the unique campaign+phone index.
		if err := st.EnsureIndexes(ctx); err != nil {
			return fail(err)
		}
		rep, err := importFile(ctx, svc, id, *file, *dryRun, render)
		if errors.Is(err, campaign.ErrBadFile) || errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(e.stderr, "worker campaign import: %v\n", err)
			return 2
		}
		if err != nil {
			return fail(timedOut(ctx, err, *timeout))
		}
		if err := writeOut(e, *asJSON, rep, rep.WriteText); err != nil {
			return fail(err)
		}
		if len(rep.Bad) > 0 {
			return 3
		}
		return 0
	case "stats":
		stats, err := svc.Stats(ctx, id, *recount)
		if err != nil {
			return fail(timedOut(ctx, err, *timeout))
		}
		return exitCode(writeOut(e, *asJSON, stats, stats.WriteText))
	case "check":
		rep, err := svc.Check(ctx, id, st)
		if err != nil {
			return fail(timedOut(ctx, err, *timeout))
		}
		if err := writeOut(e, *asJSON, rep, rep.WriteText); err != nil {
			return fail(err)
		}
		if !rep.Clean() {
			return 3
		}
		return 0
	}

	var ch campaign.Change
	switch sub {
	case "pause":
		ch, err = svc.Pause(ctx, id)
	case "resume":
		ch, err = svc.Resume(ctx, id)
	case "cancel":
		ch, err = svc.Cancel(ctx, id)
	}
	if err != nil {
		return fail(err)
	}
	return exitCode(writeOut(e, *asJSON, ch, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "campaign %s: %s → %s", id.Hex(), ch.From, ch.To)
		if err == nil && sub == "cancel" {
			_, err = fmt.Fprintf(w, " (%d queued attempts cancelled)", ch.CancelledAttempts)
		}
		if err == nil {
			_, err = fmt.Fprintln(w)
		}
		return err
	}))
}

func importFile(ctx context.Context, svc *campaign.Service, id bson.ObjectID, name string, dryRun bool, render *progress) (campaign.ImportReport, error) {
	f := os.Stdin
	if name != "-" {
		var err error
		if f, err = os.Open(name); err != nil {
			return campaign.ImportReport{}, err
		}
		defer f.Close()
	}
	var size int64
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size() // a pipe's size is not known
	}
	defer render.finish()
	return svc.Import(ctx, id, f, dryRun, campaign.WithProgress(render.report, size))
}

// timedOut names the --timeout flag when the command ran out of time.
func timedOut(ctx context.Context, err error, timeout time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w (gave up after --timeout %s)", err, timeout)
	}
	return err
}

// writeOut prints v as indented JSON, or as text for a person.
func writeOut(e env, asJSON bool, v any, text func(io.Writer) error) error {
	if !asJSON {
		return text(e.stdout)
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
