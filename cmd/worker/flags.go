package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"go.uber.org/zap/zapcore"
)

// newFlags makes a FlagSet that prints its usage once: to the command's
// stdout on --help, to stderr after a mistake. It never exits the process
// itself.
func newFlags(e env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: worker %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// quietly runs fs.Parse without the usage the flag package prints on its
// own for -h and errors, so that parse prints it once, where it belongs.
func quietly(fs *flag.FlagSet, args []string) error {
	usage := fs.Usage
	fs.Usage = func() {}
	defer func() { fs.Usage = usage }()
	return fs.Parse(args)
}

// parse returns (exit code, done): --help exits 0, a bad flag exits 2.
// Flags may come before or after positional arguments (`queue stats
// --json` and `queue --json stats` both work), as operators type both.
func parse(e env, fs *flag.FlagSet, args []string) (int, bool) {
	var positional []string
	var err error
	for {
		if err = quietly(fs, args); err != nil || fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if err == nil {
		// Re-parse only the positional arguments so fs.Args() holds them.
		err = quietly(fs, append([]string{"--"}, positional...))
	}
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(e.stdout)
		fs.Usage()
		return 0, true
	}
	if err != nil {
		// The flag package printed the error itself; the usage follows.
		fs.Usage()
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
