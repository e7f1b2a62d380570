package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"go.uber.org/zap/zapcore"
)

// newFlags makes a FlagSet that prints its usage to the command's stdout on
// --help and to stderr on a mistake, and never exits the process itself.
func newFlags(e env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: worker %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse returns (exit code, done): --help exits 0, a bad flag exits 2.
// Flags may come before or after positional arguments (`queue stats
// --json` and `queue --json stats` both work), as operators type both.
func parse(e env, fs *flag.FlagSet, args []string) (int, bool) {
	var positional []string
	var err error
	for {
		if err = fs.Parse(args); err != nil || fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if err == nil {
		// Re-parse only the positional arguments so fs.Args() holds them.
		err = fs.Parse(append([]string{"--"}, positional...))
	}
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(e.stdout)
		fs.Usage()
		return 0, true
	}
	if err != nil {
		return 2, true
	}
	return 0, false
}

// configError prints a configuration problem and returns the exit code.
func configError(e env, err error) int {
	fmt.Fprintf(e.stderr, "worker: %v\n", err)
	return 1
}

// zapSync adapts the command's stdout for zap.
func zapSync(w io.Writer) zapcore.WriteSyncer {
	if ws, ok := w.(zapcore.WriteSyncer); ok {
		return zapcore.Lock(ws)
	}
	return zapcore.Lock(zapcore.AddSync(w))
}
