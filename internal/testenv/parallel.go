package testenv

import (
	"flag"
	"fmt"
)

// DefaultParallel sets how many of a package's parallel tests run at once
// (go test's -parallel) to n, unless the command line set it. Call it in
// TestMain, before m.Run. It is for packages whose tests mostly wait, on
// worker processes and real servers, rather than compute: go test's
// default of GOMAXPROCS would leave a 2-core machine idle while they wait.
func DefaultParallel(n int) {
	if !flag.Parsed() {
		flag.Parse()
	}
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if set {
		return
	}
	if err := flag.Set("test.parallel", fmt.Sprint(n)); err != nil {
		panic(fmt.Sprintf("testenv: set -test.parallel: %v", err))
	}
}
