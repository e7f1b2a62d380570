
// The canonical-format check needs hclwrite, whose go-cmp dependency is not
// yet in go.mod. Until it is (one line: `github.com/google/go-cmp v0.7.0
// // indirect`; go.sum already has it), this file builds only with
// `go test -tags tffmt`; then delete the build line above.
// TestTerraformFmtCheck runs the same check with a terraform binary when one
// is installed.

package terraform_test

import (
	"testing"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/stretchr/testify/require"
)

// hclwrite.Format is the formatter `terraform fmt` runs, so byte equality
// with its output is what `terraform fmt -check` checks.
func TestFilesAreCanonicallyFormatted(t *testing.T) {
	cfg := loadConfig(t)
	for _, name := range sortedKeys(cfg.sources) {
		src := cfg.sources[name]
		require.Equal(t, string(hclwrite.Format(src)), string(src), "%s is not in canonical format (run terraform fmt)", name)
	}
}
