package testenv

import (
	"flag"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDefaultParallelKeepsTheCommandLinesChoice(t *testing.T) {
	f := flag.Lookup("test.parallel")
	was := f.Value.String()
	t.Cleanup(func() { require.NoError(t, flag.Set("test.parallel", was)) })
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })

	DefaultParallel(7)
	if explicit {
		require.Equal(t, was, f.Value.String(), "-parallel on the command line wins")
		return
	}
	require.Equal(t, "7", f.Value.String())
	DefaultParallel(9) // now set: a second call keeps the first
	require.Equal(t, "7", f.Value.String())
}
