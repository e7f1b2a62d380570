package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/docshield/voice-worker/internal/store"
)

const migrateSynopsis = `migrate [--json] [--timeout 2m]

Creates the MongoDB indexes and applies the campaigns and contacts
validators (schemas/mongodb, validationLevel moderate, validationAction
error), so MongoDB refuses a mistyped write from the campaign backend.
Every step is idempotent: heroku.yml's release phase runs it on every
release. A server that does not enforce validators (FerretDB) is reported,
not failed. Applying a validator needs the dbAdmin role (collMod).

Exit: 0 done, 1 failure.`

func cmdMigrate(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "migrate", migrateSynopsis)
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	if code, done := parse(e, fs, args); done {
		return code
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	return withStore(ctx, e, *timeout, func(ctx context.Context, st *store.Store) int {
		steps, err := st.Migrate(ctx)
		if werr := writeOut(e, *asJSON, steps, func(w io.Writer) error { return writeSteps(w, steps) }); werr != nil && err == nil {
			err = werr
		}
		if err != nil {
			fmt.Fprintf(e.stderr, "worker migrate: %v\n", timedOut(ctx, err, *timeout))
			return 1
		}
		return 0
	})
}

func writeSteps(w io.Writer, steps []store.MigrationStep) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range steps {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.What, s.State, s.Detail)
	}
	return tw.Flush()
}
