// TestTerraformFmtCheck (terraform_test.go) runs the same check with a
// terraform binary when one is installed; this one needs none.

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
