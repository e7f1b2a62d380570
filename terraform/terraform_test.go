// Package terraform_test checks the Terraform configuration without Terraform.
//
// The provider registry cannot be reached from CI, so `terraform validate`
// cannot run there. These tests parse the HCL with HashiCorp's own library
// and assert what matters for the worker: every file parses and is in
// canonical format, every variable used is declared and set per environment,
// providers are pinned, and the settings the operations doc depends on
// (encryption, versioning, expiry, public access block, noeviction, AOF,
// replication, backups, M10 x 3) have the right values.
package terraform_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/docshield/voice-worker/internal/bucket"
	"github.com/docshield/voice-worker/internal/recording"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/stretchr/testify/require"
)

// config is every HCL file of this directory, parsed.
type config struct {
	tf       map[string]*hclsyntax.Body // *.tf
	tfvars   map[string]*hclsyntax.Body // *.tfvars.example, one per environment
	backends map[string]*hclsyntax.Body // *.backend.hcl.example, one per environment
	sources  map[string][]byte          // every file above, for the format check

	// defaults is each variable's default expression, nil when it has none.
	defaults map[string]hclsyntax.Expression
}

// envFiles maps a tfvars/backend file prefix to its APP_ENV.
var envFiles = map[string]string{
	"dev":     "development",
	"staging": "staging",
	"prod":    "production",
}

func loadConfig(t *testing.T) *config {
	t.Helper()
	cfg := &config{
		tf:       map[string]*hclsyntax.Body{},
		tfvars:   map[string]*hclsyntax.Body{},
		backends: map[string]*hclsyntax.Body{},
		sources:  map[string][]byte{},
	}
	entries, err := os.ReadDir(".")
	require.NoError(t, err)
	parser := hclparse.NewParser()
	for _, e := range entries {
		name := e.Name()
		var dst map[string]*hclsyntax.Body
		switch {
		case strings.HasSuffix(name, ".tf"):
			dst = cfg.tf
		case strings.HasSuffix(name, ".tfvars.example"):
			dst = cfg.tfvars
		case strings.HasSuffix(name, ".backend.hcl.example"):
			dst = cfg.backends
		default:
			continue
		}
		src, err := os.ReadFile(name)
		require.NoError(t, err)
		f, diags := parser.ParseHCL(src, name)
		require.False(t, diags.HasErrors(), "%s: %s", name, diags.Error())
		dst[name] = f.Body.(*hclsyntax.Body)
		cfg.sources[name] = src
	}

	cfg.defaults = map[string]hclsyntax.Expression{}
	for _, b := range cfg.blocks("variable") {
		cfg.defaults[b.Labels[0]] = nil
		if def, ok := b.Body.Attributes["default"]; ok {
			cfg.defaults[b.Labels[0]] = def.Expr
		}
	}
	return cfg
}

// blocks returns the top-level blocks of all *.tf files with this type whose
// labels start with the given ones, sorted by file for stable messages.
func (c *config) blocks(typ string, labels ...string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, name := range sortedKeys(c.tf) {
		for _, b := range c.tf[name].Blocks {
			if b.Type == typ && len(b.Labels) >= len(labels) && slices.Equal(b.Labels[:len(labels)], labels) {
				out = append(out, b)
			}
		}
	}
	return out
}

// findBlock returns the one top-level block matching typ and labels.
func findBlock(t *testing.T, c *config, typ string, labels ...string) *hclsyntax.Block {
	t.Helper()
	found := c.blocks(typ, labels...)
	require.Len(t, found, 1, "want exactly one %s %q block", typ, labels)
	return found[0]
}

// nested returns the blocks of this type directly inside b.
func nested(b *hclsyntax.Block, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, n := range b.Body.Blocks {
		if n.Type == typ {
			out = append(out, n)
		}
	}
	return out
}

func oneNested(t *testing.T, b *hclsyntax.Block, typ string) *hclsyntax.Block {
	t.Helper()
	found := nested(b, typ)
	require.Len(t, found, 1, "%s %q: want exactly one %q block", b.Type, b.Labels, typ)
	return found[0]
}

func attr(t *testing.T, b *hclsyntax.Block, name string) hclsyntax.Expression {
	t.Helper()
	a, ok := b.Body.Attributes[name]
	require.True(t, ok, "%s %q: attribute %q missing", b.Type, b.Labels, name)
	return a.Expr
}

// resolve follows `var.X` to X's default, so a setting fixed by a default
// can be checked; a variable without default fails the test, because its
// value is then chosen per environment rather than fixed in code.
func (c *config) resolve(t *testing.T, expr hclsyntax.Expression) hclsyntax.Expression {
	t.Helper()
	tr, ok := expr.(*hclsyntax.ScopeTraversalExpr)
	if !ok || tr.Traversal.RootName() != "var" {
		return expr
	}
	name := strings.TrimPrefix(refs(tr)[0], "var.")
	def, declared := c.defaults[name]
	require.True(t, declared, "var.%s is not declared", name)
	require.NotNil(t, def, "%s: var.%s has no default, so its value is not fixed in code", exprText(expr), name)
	return def
}

// literal evaluates a setting by walking its syntax: literals, strings
// without interpolation of anything but defaulted variables, lists, objects,
// and `var.X` with a literal default. It returns string, bool, int, float64,
// []any, map[string]any or nil, and fails the test on anything else.
//
// Walking the syntax rather than calling Value keeps this package free of a
// direct go-cty import (go.mod lists go-cty only as indirect).
func (c *config) literal(t *testing.T, expr hclsyntax.Expression) any {
	t.Helper()
	switch e := expr.(type) {
	case *hclsyntax.LiteralValueExpr:
		v := e.Val
		switch {
		case v.IsNull():
			return nil
		case v.Type().FriendlyName() == "string":
			return v.AsString()
		case v.Type().FriendlyName() == "bool":
			return v.True()
		case v.Type().FriendlyName() == "number":
			f := v.AsBigFloat()
			if i, acc := f.Int64(); f.IsInt() && acc == 0 {
				return int(i)
			}
			x, _ := f.Float64()
			return x
		}
	case *hclsyntax.TemplateExpr:
		var sb strings.Builder
		for _, part := range e.Parts {
			s, ok := c.literal(t, part).(string)
			require.True(t, ok, "%s: template part is not a string", exprText(expr))
			sb.WriteString(s)
		}
		return sb.String()
	case *hclsyntax.TemplateWrapExpr:
		return c.literal(t, e.Wrapped)
	case *hclsyntax.TupleConsExpr:
		out := []any{}
		for _, item := range e.Exprs {
			out = append(out, c.literal(t, item))
		}
		return out
	case *hclsyntax.ObjectConsExpr:
		out := map[string]any{}
		for _, item := range e.Items {
			k, diags := item.KeyExpr.Value(nil)
			require.False(t, diags.HasErrors(), diags.Error())
			out[k.AsString()] = c.literal(t, item.ValueExpr)
		}
		return out
	case *hclsyntax.ScopeTraversalExpr:
		if resolved := c.resolve(t, e); resolved != expr {
			return c.literal(t, resolved)
		}
	}
	require.Failf(t, "not a literal", "%s cannot be evaluated without tfvars or other resources", exprText(expr))
	return nil
}

func (c *config) str(t *testing.T, expr hclsyntax.Expression) string {
	t.Helper()
	s, ok := c.literal(t, expr).(string)
	require.True(t, ok, "%s is not a string", exprText(expr))
	return s
}

func (c *config) boolean(t *testing.T, expr hclsyntax.Expression) bool {
	t.Helper()
	b, ok := c.literal(t, expr).(bool)
	require.True(t, ok, "%s is not a bool", exprText(expr))
	return b
}

func (c *config) integer(t *testing.T, expr hclsyntax.Expression) int {
	t.Helper()
	i, ok := c.literal(t, expr).(int)
	require.True(t, ok, "%s is not a whole number", exprText(expr))
	return i
}

func (c *config) stringList(t *testing.T, expr hclsyntax.Expression) []string {
	t.Helper()
	list, ok := c.literal(t, expr).([]any)
	require.True(t, ok, "%s is not a list", exprText(expr))
	out := []string{}
	for _, item := range list {
		s, ok := item.(string)
		require.True(t, ok, "%s: element %v is not a string", exprText(expr), item)
		out = append(out, s)
	}
	return out
}

// flag is an optional bool attribute such as `sensitive`; absent is false.
func (c *config) flag(t *testing.T, b *hclsyntax.Block, name string) bool {
	t.Helper()
	a, ok := b.Body.Attributes[name]
	return ok && c.boolean(t, a.Expr)
}

// requireAttr asserts that attribute name of b has the value want.
func requireAttr(t *testing.T, c *config, b *hclsyntax.Block, name string, want any) {
	t.Helper()
	require.Equal(t, want, c.literal(t, attr(t, b, name)), "%s %q: %s", b.Type, b.Labels, name)
}

// field walks into an object/tuple constructor expression: ints index a
// tuple, strings pick an object key.
func field(t *testing.T, expr hclsyntax.Expression, steps ...any) hclsyntax.Expression {
	t.Helper()
	for _, step := range steps {
		switch step := step.(type) {
		case int:
			tuple, ok := expr.(*hclsyntax.TupleConsExpr)
			require.True(t, ok, "%s is not a list", exprText(expr))
			require.Greater(t, len(tuple.Exprs), step, "%s: index %d out of range", exprText(expr), step)
			expr = tuple.Exprs[step]
		case string:
			expr = objectItem(t, expr, step)
		}
	}
	return expr
}

func length(t *testing.T, expr hclsyntax.Expression) int {
	t.Helper()
	tuple, ok := expr.(*hclsyntax.TupleConsExpr)
	require.True(t, ok, "%s is not a list", exprText(expr))
	return len(tuple.Exprs)
}

// refs renders every reference in expr as "root.attr.attr", stopping at the
// first index step: aws_s3_bucket.recordings.arn, var.aws_region, local.name.
func refs(expr hclsyntax.Expression) []string {
	var out []string
	for _, tr := range expr.Variables() {
		parts := []string{tr.RootName()}
		for _, step := range tr[1:] {
			a, ok := step.(hcl.TraverseAttr)
			if !ok {
				break
			}
			parts = append(parts, a.Name)
		}
		out = append(out, strings.Join(parts, "."))
	}
	return out
}

// refersTo reports whether expr references target or something inside it.
func refersTo(expr hclsyntax.Expression, target string) bool {
	return slices.ContainsFunc(refs(expr), func(r string) bool {
		return r == target || strings.HasPrefix(r, target+".")
	})
}

func requireRefersTo(t *testing.T, expr hclsyntax.Expression, target string) {
	t.Helper()
	require.True(t, refersTo(expr, target), "%s does not reference %s", exprText(expr), target)
}

// local returns the expression defining local.name.
func (c *config) local(t *testing.T, name string) hclsyntax.Expression {
	t.Helper()
	var found []hclsyntax.Expression
	for _, b := range c.blocks("locals") {
		if a, ok := b.Body.Attributes[name]; ok {
			found = append(found, a.Expr)
		}
	}
	require.Len(t, found, 1, "want exactly one definition of local.%s", name)
	return found[0]
}

// deepRefs is refs with local.X references expanded to what X references.
func (c *config) deepRefs(t *testing.T, expr hclsyntax.Expression) []string {
	t.Helper()
	seen := map[string]bool{}
	var out []string
	var walk func(hclsyntax.Expression)
	walk = func(e hclsyntax.Expression) {
		for _, r := range refs(e) {
			if seen[r] {
				continue
			}
			seen[r] = true
			out = append(out, r)
			if name, ok := strings.CutPrefix(r, "local."); ok {
				walk(c.local(t, strings.SplitN(name, ".", 2)[0]))
			}
		}
	}
	walk(expr)
	return out
}

// objectKeys returns the keys of every object constructor inside expr, so
// `merge({A = 1}, {for ... in {B = 2} : ...})` yields A and B.
func objectKeys(t *testing.T, expr hclsyntax.Expression) []string {
	t.Helper()
	var keys []string
	diags := hclsyntax.VisitAll(expr, func(n hclsyntax.Node) hcl.Diagnostics {
		obj, ok := n.(*hclsyntax.ObjectConsExpr)
		if !ok {
			return nil
		}
		for _, item := range obj.Items {
			k, diags := item.KeyExpr.Value(nil)
			if diags.HasErrors() {
				return diags
			}
			keys = append(keys, k.AsString())
		}
		return nil
	})
	require.False(t, diags.HasErrors(), diags.Error())
	return keys
}

// objectItem returns the value expression of key in an object constructor.
func objectItem(t *testing.T, expr hclsyntax.Expression, key string) hclsyntax.Expression {
	t.Helper()
	obj, ok := expr.(*hclsyntax.ObjectConsExpr)
	require.True(t, ok, "%s is not an object constructor", exprText(expr))
	for _, item := range obj.Items {
		k, diags := item.KeyExpr.Value(nil)
		require.False(t, diags.HasErrors(), diags.Error())
		if k.AsString() == key {
			return item.ValueExpr
		}
	}
	require.Failf(t, "missing key", "object has no key %q", key)
	return nil
}

func exprText(expr hclsyntax.Expression) string {
	r := expr.Range()
	src, err := os.ReadFile(r.Filename)
	if err != nil || r.End.Byte > len(src) {
		return r.String()
	}
	return string(src[r.Start.Byte:r.End.Byte])
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

func TestFilesParseAndOneFilePerConcern(t *testing.T) {
	cfg := loadConfig(t)
	for _, f := range []string{"versions.tf", "providers.tf", "backend.tf", "variables.tf", "outputs.tf",
		"heroku.tf", "s3.tf", "iam.tf", "atlas.tf", "redis.tf"} {
		require.Contains(t, cfg.tf, f)
	}
	for prefix := range envFiles {
		require.Contains(t, cfg.tfvars, prefix+".tfvars.example")
		require.Contains(t, cfg.backends, prefix+".backend.hcl.example")
	}

	// Each provider's resources live in that concern's file.
	owners := map[string]string{"heroku_": "heroku.tf", "aws_s3_": "s3.tf", "aws_iam_": "iam.tf",
		"mongodbatlas_": "atlas.tf", "rediscloud_": "redis.tf"}
	for name, body := range cfg.tf {
		for _, b := range body.Blocks {
			if b.Type != "resource" {
				continue
			}
			for prefix, owner := range owners {
				if strings.HasPrefix(b.Labels[0], prefix) {
					require.Equal(t, owner, name, "resource %s.%s", b.Labels[0], b.Labels[1])
				}
			}
		}
	}
}

// terraform fmt skips *.example files, so those go through `fmt -` (stdin to
// stdout) and must come back unchanged.
func TestTerraformFmtCheck(t *testing.T) {
	var bin string
	for _, name := range []string{"terraform", "tofu"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Skip("neither terraform nor tofu on PATH")
	}
	out, err := exec.Command(bin, "fmt", "-check", "-recursive", "-diff", ".").CombinedOutput()
	require.NoError(t, err, "%s fmt -check:\n%s", filepath.Base(bin), out)

	cfg := loadConfig(t)
	for _, name := range sortedKeys(cfg.sources) {
		if !strings.HasSuffix(name, ".example") {
			continue
		}
		cmd := exec.Command(bin, "fmt", "-")
		cmd.Stdin = bytes.NewReader(cfg.sources[name])
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		formatted, err := cmd.Output()
		require.NoError(t, err, "%s fmt - < %s: %s", filepath.Base(bin), name, stderr.String())
		require.Equal(t, string(cfg.sources[name]), string(formatted), "%s is not in canonical format", name)
	}
}

// ---------------------------------------------------------------------------
// Variables
// ---------------------------------------------------------------------------

func TestEveryReferenceIsDeclared(t *testing.T) {
	cfg := loadConfig(t)
	declared := map[string]bool{}
	for _, b := range cfg.blocks("variable") {
		declared[b.Labels[0]] = true
	}
	locals := map[string]bool{}
	for _, b := range cfg.blocks("locals") {
		for name := range b.Body.Attributes {
			require.False(t, locals[name], "local.%s defined twice", name)
			locals[name] = true
		}
	}

	usedVars := map[string]bool{}
	for name, body := range cfg.tf {
		diags := hclsyntax.VisitAll(body, func(n hclsyntax.Node) hcl.Diagnostics {
			expr, ok := n.(hclsyntax.Expression)
			if !ok {
				return nil
			}
			for _, r := range refs(expr) {
				parts := strings.Split(r, ".")
				if len(parts) < 2 {
					continue
				}
				switch parts[0] {
				case "var":
					require.True(t, declared[parts[1]], "%s: var.%s is not declared", name, parts[1])
					usedVars[parts[1]] = true
				case "local":
					require.True(t, locals[parts[1]], "%s: local.%s is not defined", name, parts[1])
				}
			}
			return nil
		})
		require.False(t, diags.HasErrors(), diags.Error())
	}
	for v := range declared {
		require.True(t, usedVars[v], "variable %q is declared but never used", v)
	}
}

// Secrets have no default and never appear in a tfvars file: they come from
// TF_VAR_* environment variables, so a copied example can never carry one.
func TestTfvarsExamplesSetEveryRequiredVariable(t *testing.T) {
	cfg := loadConfig(t)
	type variable struct{ hasDefault, sensitive bool }
	vars := map[string]variable{}
	for _, b := range cfg.blocks("variable") {
		_, hasDefault := b.Body.Attributes["default"]
		vars[b.Labels[0]] = variable{hasDefault: hasDefault, sensitive: cfg.flag(t, b, "sensitive")}
	}

	for _, secret := range []string{"livekit_api_key", "livekit_api_secret", "openai_api_key", "logtail_source_token", "logtail_heroku_drain_url"} {
		require.Contains(t, vars, secret)
		require.True(t, vars[secret].sensitive, "variable %q holds a secret and must be sensitive", secret)
		require.False(t, vars[secret].hasDefault, "variable %q holds a secret and must not have a default", secret)
	}

	require.Len(t, cfg.tfvars, len(envFiles))
	for file, body := range cfg.tfvars {
		require.Empty(t, body.Blocks, "%s: tfvars hold attributes only", file)
		for name, a := range body.Attributes {
			v, ok := vars[name]
			require.True(t, ok, "%s sets %q, which is not a declared variable", file, name)
			require.False(t, v.sensitive, "%s sets the secret %q; pass it as TF_VAR_%s instead", file, name, name)
			_, diags := a.Expr.Value(nil)
			require.False(t, diags.HasErrors(), "%s: %s is not a literal: %s", file, name, diags.Error())
		}
		for _, name := range sortedKeys(vars) {
			if v := vars[name]; !v.hasDefault && !v.sensitive {
				require.Contains(t, body.Attributes, name, "%s does not set the required variable %q", file, name)
			}
		}
		prefix := strings.TrimSuffix(file, ".tfvars.example")
		require.Equal(t, envFiles[prefix], cfg.str(t, body.Attributes["environment"].Expr), "%s: environment", file)
	}
}

// ---------------------------------------------------------------------------
// Terraform, providers and remote state
// ---------------------------------------------------------------------------

func TestProvidersArePinned(t *testing.T) {
	cfg := loadConfig(t)
	var required *hclsyntax.Block
	var version hclsyntax.Expression
	for _, tb := range cfg.blocks("terraform") {
		if rp := nested(tb, "required_providers"); len(rp) > 0 {
			require.Nil(t, required, "required_providers declared twice")
			require.Len(t, rp, 1)
			required = rp[0]
			version = attr(t, tb, "required_version")
		}
	}
	require.NotNil(t, required, "no required_providers block")
	v := cfg.str(t, version)
	require.True(t, strings.HasPrefix(v, "~>"), "required_version %q is not pinned to a series", v)

	wantSources := map[string]string{
		"heroku":       "heroku/heroku",
		"aws":          "hashicorp/aws",
		"mongodbatlas": "mongodb/mongodbatlas",
		"rediscloud":   "RedisLabs/rediscloud",
		"random":       "hashicorp/random",
	}
	require.ElementsMatch(t, sortedKeys(wantSources), sortedKeys(required.Body.Attributes))
	for name, a := range required.Body.Attributes {
		p, ok := cfg.literal(t, a.Expr).(map[string]any)
		require.True(t, ok, "provider %s: want { source, version }", name)
		require.Equal(t, wantSources[name], p["source"], "provider %s source", name)
		constraint, _ := p["version"].(string)
		require.True(t, strings.HasPrefix(constraint, "~>") || strings.HasPrefix(constraint, "="),
			"provider %s: version %q is open-ended; pin it with ~> or =", name, constraint)
	}

	// Every provider in use has a provider block (credentials from the
	// environment, so the blocks carry no secrets).
	for name := range wantSources {
		b := findBlock(t, cfg, "provider", name)
		for a := range b.Body.Attributes {
			require.NotContains(t, []string{"api_key", "public_key", "private_key", "access_key", "secret_key", "api_secret_key"}, a,
				"provider %s sets the credential %q in code", name, a)
		}
	}
}

func TestStateIsRemoteAndSeparatePerEnvironment(t *testing.T) {
	cfg := loadConfig(t)
	var backends []*hclsyntax.Block
	for _, tb := range cfg.blocks("terraform") {
		backends = append(backends, nested(tb, "backend")...)
	}
	require.Len(t, backends, 1, "want exactly one backend")
	require.Equal(t, []string{"s3"}, backends[0].Labels)
	require.Empty(t, backends[0].Body.Attributes, "the backend is a partial configuration; settings belong in *.backend.hcl")

	keys := map[string]string{}
	for file, body := range cfg.backends {
		get := func(name string) hclsyntax.Expression {
			a, ok := body.Attributes[name]
			require.True(t, ok, "%s: %s missing", file, name)
			return a.Expr
		}
		for _, name := range []string{"bucket", "region"} {
			require.NotEmpty(t, cfg.str(t, get(name)), "%s: %s", file, name)
		}
		require.True(t, cfg.boolean(t, get("encrypt")), "%s: encrypt", file)
		require.True(t, cfg.boolean(t, get("use_lockfile")), "%s: use_lockfile (state locking)", file)

		key := cfg.str(t, get("key"))
		env := envFiles[strings.TrimSuffix(file, ".backend.hcl.example")]
		require.Contains(t, key, "/"+env+"/", "%s: state key must name its environment", file)
		require.NotContains(t, keys, key, "%s and %s share a state key", file, keys[key])
		keys[key] = file
	}
}

// ---------------------------------------------------------------------------
// S3 and IAM
// ---------------------------------------------------------------------------

func TestRecordingsBucketSettings(t *testing.T) {
	cfg := loadConfig(t)
	const bucket = "aws_s3_bucket.recordings"
	findBlock(t, cfg, "resource", "aws_s3_bucket", "recordings")

	// Every bucket_* resource configures the recordings bucket.
	for _, b := range cfg.blocks("resource") {
		if strings.HasPrefix(b.Labels[0], "aws_s3_bucket_") {
			requireRefersTo(t, attr(t, b, "bucket"), bucket)
		}
	}

	sse := findBlock(t, cfg, "resource", "aws_s3_bucket_server_side_encryption_configuration")
	byDefault := oneNested(t, oneNested(t, sse, "rule"), "apply_server_side_encryption_by_default")
	requireAttr(t, cfg, byDefault, "sse_algorithm", "AES256")

	versioning := findBlock(t, cfg, "resource", "aws_s3_bucket_versioning")
	requireAttr(t, cfg, oneNested(t, versioning, "versioning_configuration"), "status", "Enabled")

	pab := findBlock(t, cfg, "resource", "aws_s3_bucket_public_access_block")
	for _, name := range []string{"block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"} {
		requireAttr(t, cfg, pab, name, true)
	}

	ownership := findBlock(t, cfg, "resource", "aws_s3_bucket_ownership_controls")
	requireAttr(t, cfg, oneNested(t, ownership, "rule"), "object_ownership", "BucketOwnerEnforced")
}

func TestRecordingsLifecycle(t *testing.T) {
	cfg := loadConfig(t)
	lc := findBlock(t, cfg, "resource", "aws_s3_bucket_lifecycle_configuration")
	rules := nested(lc, "rule")
	require.NotEmpty(t, rules)

	// prefix returns the rule's filter prefix, "" for a whole-bucket rule.
	prefix := func(rule *hclsyntax.Block) string {
		f := oneNested(t, rule, "filter")
		a, ok := f.Body.Attributes["prefix"]
		if !ok {
			require.Empty(t, f.Body.Attributes, "rule filter: only prefix filters are expected")
			require.Empty(t, f.Body.Blocks, "rule filter: only prefix filters are expected")
			return ""
		}
		return cfg.str(t, a.Expr)
	}
	// one returns the single rule that has a block of this type and filter.
	one := func(blockType, wantPrefix string) *hclsyntax.Block {
		var found []*hclsyntax.Block
		for _, r := range rules {
			if len(nested(r, blockType)) > 0 && prefix(r) == wantPrefix {
				found = append(found, r)
			}
		}
		require.Len(t, found, 1, "want one lifecycle rule with %s on prefix %q", blockType, wantPrefix)
		return found[0]
	}

	for _, r := range rules {
		requireAttr(t, cfg, r, "status", "Enabled")
	}
	requireAttr(t, cfg, oneNested(t, one("expiration", "recordings/"), "expiration"), "days", 90)
	requireAttr(t, cfg, oneNested(t, one("expiration", "recordings-partial/"), "expiration"), "days", 7)
	requireAttr(t, cfg, oneNested(t, one("expiration", "health/probe/"), "expiration"), "days", 1)
	requireAttr(t, cfg, oneNested(t, one("noncurrent_version_expiration", ""), "noncurrent_version_expiration"), "noncurrent_days", 30)
	requireAttr(t, cfg, oneNested(t, one("abort_incomplete_multipart_upload", ""), "abort_incomplete_multipart_upload"), "days_after_initiation", 1)
}

// statement returns the one statement of a policy document whose sid is sid.
func statement(t *testing.T, cfg *config, doc *hclsyntax.Block, sid string) *hclsyntax.Block {
	t.Helper()
	var found []*hclsyntax.Block
	for _, s := range nested(doc, "statement") {
		if a, ok := s.Body.Attributes["sid"]; ok && cfg.str(t, a.Expr) == sid {
			found = append(found, s)
		}
	}
	require.Len(t, found, 1, "policy %q: want one statement %q", doc.Labels, sid)
	return found[0]
}

func TestBucketPolicyDeniesWrongEncryptionAndPlainHTTP(t *testing.T) {
	cfg := loadConfig(t)
	policy := findBlock(t, cfg, "resource", "aws_s3_bucket_policy")
	requireRefersTo(t, attr(t, policy, "policy"), "data.aws_iam_policy_document.recordings_bucket")
	doc := findBlock(t, cfg, "data", "aws_iam_policy_document", "recordings_bucket")

	// The condition must be the IfExists form: UploadPart is authorized as
	// s3:PutObject without the encryption header, and a plain StringNotEquals
	// would deny every part of the worker's multipart uploads.
	enc := statement(t, cfg, doc, "DenyUploadsNotEncryptedWithAES256")
	requireAttr(t, cfg, enc, "effect", "Deny")
	require.Equal(t, []string{"s3:PutObject"}, cfg.stringList(t, attr(t, enc, "actions")))
	cond := oneNested(t, enc, "condition")
	requireAttr(t, cfg, cond, "test", "StringNotEqualsIfExists")
	requireAttr(t, cfg, cond, "variable", "s3:x-amz-server-side-encryption")
	require.Equal(t, []string{"AES256"}, cfg.stringList(t, attr(t, cond, "values")))

	tls := statement(t, cfg, doc, "DenyInsecureTransport")
	requireAttr(t, cfg, tls, "effect", "Deny")
	require.Equal(t, []string{"s3:*"}, cfg.stringList(t, attr(t, tls, "actions")))
	cond = oneNested(t, tls, "condition")
	requireAttr(t, cfg, cond, "test", "Bool")
	requireAttr(t, cfg, cond, "variable", "aws:SecureTransport")
	require.Equal(t, []string{"false"}, cfg.stringList(t, attr(t, cond, "values")))
	// Both the bucket and its objects.
	requireResources(t, attr(t, tls, "resources"), "aws_s3_bucket.recordings.arn", "aws_s3_bucket.recordings.arn/*")

	for _, s := range nested(doc, "statement") {
		p := oneNested(t, s, "principals")
		require.Equal(t, []string{"*"}, cfg.stringList(t, attr(t, p, "identifiers")), "deny statements apply to everyone")
	}
}

// requireResources asserts a resources list is exactly the given references,
// written "ref" for a bare reference and "ref/*" for "${ref}/*".
func requireResources(t *testing.T, expr hclsyntax.Expression, want ...string) {
	t.Helper()
	tuple, ok := expr.(*hclsyntax.TupleConsExpr)
	require.True(t, ok, "%s is not a list", exprText(expr))
	var got []string
	for _, e := range tuple.Exprs {
		switch e := e.(type) {
		case *hclsyntax.ScopeTraversalExpr:
			got = append(got, strings.Join(refs(e), ""))
		case *hclsyntax.TemplateExpr:
			require.Len(t, e.Parts, 2, "%s: want \"${ref}/suffix\"", exprText(e))
			lit, ok := e.Parts[1].(*hclsyntax.LiteralValueExpr)
			require.True(t, ok, "%s: want \"${ref}/suffix\"", exprText(e))
			got = append(got, strings.Join(refs(e.Parts[0]), "")+lit.Val.AsString())
		default:
			require.Failf(t, "unexpected resource", "%s", exprText(e))
		}
	}
	require.ElementsMatch(t, want, got)
}

func TestWorkerIAMPolicyIsLeastPrivilege(t *testing.T) {
	cfg := loadConfig(t)
	userPolicy := findBlock(t, cfg, "resource", "aws_iam_user_policy")
	requireRefersTo(t, attr(t, userPolicy, "policy"), "data.aws_iam_policy_document.worker_recordings")
	requireRefersTo(t, attr(t, userPolicy, "user"), "aws_iam_user.worker")
	requireRefersTo(t, attr(t, findBlock(t, cfg, "resource", "aws_iam_access_key"), "user"), "aws_iam_user.worker")
	require.Empty(t, cfg.blocks("resource", "aws_iam_user_policy_attachment"), "no managed policies on the worker")

	doc := findBlock(t, cfg, "data", "aws_iam_policy_document", "worker_recordings")
	statements := nested(doc, "statement")
	require.Len(t, statements, 4)
	for _, s := range statements {
		requireAttr(t, cfg, s, "effect", "Allow")
		require.NotContains(t, s.Body.Attributes, "not_actions")
		require.NotContains(t, s.Body.Attributes, "not_resources")
	}

	objects := statement(t, cfg, doc, "RecordingObjects")
	require.ElementsMatch(t, []string{
		"s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
	}, cfg.stringList(t, attr(t, objects, "actions")))
	requireResources(t, attr(t, objects, "resources"), "aws_s3_bucket.recordings.arn/*")

	// Deletes only under the prefixes the worker deletes from: joined
	// recording segments and the probe's object, never a final recording.
	deletes := statement(t, cfg, doc, "ScratchDeletes")
	require.Equal(t, []string{"s3:DeleteObject"}, cfg.stringList(t, attr(t, deletes, "actions")))
	requireResources(t, attr(t, deletes, "resources"),
		"aws_s3_bucket.recordings.arn/"+recording.PartialPrefix+"*", "aws_s3_bucket.recordings.arn/"+bucket.ProbePrefix+"*")
	for _, s := range statements {
		if s != deletes {
			require.NotContains(t, cfg.stringList(t, attr(t, s, "actions")), "s3:DeleteObject")
		}
	}

	// Version-level access only where the health probe writes
	// (storage.ProbePrefix), never on recordings.
	probe := statement(t, cfg, doc, "HealthProbeVersions")
	require.ElementsMatch(t, []string{"s3:GetObjectVersion", "s3:DeleteObjectVersion"},
		cfg.stringList(t, attr(t, probe, "actions")))
	requireResources(t, attr(t, probe, "resources"), "aws_s3_bucket.recordings.arn/health/probe/*")

	// HeadBucket needs ListBucket; the rest are what `worker verify s3` reads.
	bucket := statement(t, cfg, doc, "RecordingBucket")
	require.ElementsMatch(t, []string{
		"s3:ListBucket", "s3:GetBucketLocation", "s3:GetBucketVersioning", "s3:GetEncryptionConfiguration",
		"s3:GetLifecycleConfiguration", "s3:GetBucketPublicAccessBlock",
	}, cfg.stringList(t, attr(t, bucket, "actions")))
	requireResources(t, attr(t, bucket, "resources"), "aws_s3_bucket.recordings.arn")
}

// ---------------------------------------------------------------------------
// MongoDB Atlas
// ---------------------------------------------------------------------------

func TestAtlasCluster(t *testing.T) {
	cfg := loadConfig(t)
	cluster := findBlock(t, cfg, "resource", "mongodbatlas_advanced_cluster")
	requireAttr(t, cfg, cluster, "cluster_type", "REPLICASET")
	requireAttr(t, cfg, cluster, "backup_enabled", true)

	specs := attr(t, cluster, "replication_specs")
	require.Equal(t, 1, length(t, specs), "one replica set")
	regions := field(t, specs, 0, "region_configs")
	require.Equal(t, 1, length(t, regions), "one region: all three members together")
	region := field(t, regions, 0)
	require.Equal(t, "M10", cfg.str(t, field(t, region, "electable_specs", "instance_size")))
	require.Equal(t, 3, cfg.integer(t, field(t, region, "electable_specs", "node_count")))
	scaling := field(t, region, "auto_scaling")
	require.True(t, cfg.boolean(t, field(t, scaling, "compute_enabled")), "compute auto-scaling")
	require.True(t, cfg.boolean(t, field(t, scaling, "disk_gb_enabled")), "disk auto-scaling")
	require.Equal(t, "M10", cfg.str(t, field(t, scaling, "compute_min_instance_size")), "auto-scaling floor")

	schedule := findBlock(t, cfg, "resource", "mongodbatlas_cloud_backup_schedule")
	requireRefersTo(t, attr(t, schedule, "cluster_name"), "mongodbatlas_advanced_cluster.voice")
	daily := oneNested(t, schedule, "policy_item_daily")
	requireAttr(t, cfg, daily, "frequency_interval", 1)
	requireAttr(t, cfg, daily, "retention_unit", "days")
	require.Positive(t, cfg.integer(t, attr(t, daily, "retention_value")), "daily backups must be retained")
}

func TestAtlasUserAndAccessList(t *testing.T) {
	cfg := loadConfig(t)
	user := findBlock(t, cfg, "resource", "mongodbatlas_database_user")
	requireAttr(t, cfg, user, "auth_database_name", "admin")
	roles := nested(user, "roles")
	require.Len(t, roles, 2, "readWrite on the one database, and migrate's custom role")
	role := roles[0]
	requireAttr(t, cfg, role, "role_name", "readWrite")
	requireRefersTo(t, attr(t, role, "database_name"), "var.mongodb_database")
	require.NotContains(t, role.Body.Attributes, "collection_name")
	requireRefersTo(t, attr(t, roles[1], "role_name"), "mongodbatlas_custom_db_role.worker_migrate")

	// Migrate's role: collMod, create collection and index, in the one
	// database only; nothing that drops or administers.
	custom := findBlock(t, cfg, "resource", "mongodbatlas_custom_db_role", "worker_migrate")
	var actions []string
	for _, a := range nested(custom, "actions") {
		actions = append(actions, cfg.str(t, attr(t, a, "action")))
		requireRefersTo(t, attr(t, oneNested(t, a, "resources"), "database_name"), "var.mongodb_database")
	}
	require.ElementsMatch(t, []string{"COLL_MOD", "CREATE_COLLECTION", "CREATE_INDEX"}, actions)
	scope := oneNested(t, user, "scopes")
	requireAttr(t, cfg, scope, "type", "CLUSTER")
	requireRefersTo(t, attr(t, scope, "name"), "mongodbatlas_advanced_cluster.voice")
	requireRefersTo(t, attr(t, user, "password"), "random_password.mongodb")

	access := findBlock(t, cfg, "resource", "mongodbatlas_project_ip_access_list")
	requireRefersTo(t, attr(t, access, "for_each"), "var.atlas_ip_access_list")
}

// ---------------------------------------------------------------------------
// Redis Cloud
// ---------------------------------------------------------------------------

func TestRedisQueueDatabase(t *testing.T) {
	cfg := loadConfig(t)
	db := findBlock(t, cfg, "resource", "rediscloud_subscription_database")
	requireRefersTo(t, attr(t, db, "subscription_id"), "rediscloud_subscription.voice")
	requireAttr(t, cfg, db, "data_eviction", "noeviction")
	requireAttr(t, cfg, db, "data_persistence", "aof-every-1-second")
	requireAttr(t, cfg, db, "replication", true)
	requireAttr(t, cfg, db, "dataset_size_in_gb", 0.1) // 100 MB
	requireAttr(t, cfg, oneNested(t, db, "remote_backup"), "interval", "every-6-hours")
	requireRefersTo(t, attr(t, db, "password"), "random_password.redis")

	sub := findBlock(t, cfg, "resource", "rediscloud_subscription")
	plan := oneNested(t, sub, "creation_plan")
	requireAttr(t, cfg, plan, "replication", true)
	requireAttr(t, cfg, plan, "dataset_size_in_gb", 0.1)
}

// ---------------------------------------------------------------------------
// Heroku
// ---------------------------------------------------------------------------

// sensitiveConfig and plainConfig are every config var the worker reads in
// a deployed environment (S3_ENDPOINT and REDIS_TLS_INSECURE_SKIP_VERIFY are for local
// and Heroku Redis only).
var (
	sensitiveConfig = []string{"REDIS_URL", "MONGODB_URI", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
		"LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "OPENAI_API_KEY", "LOGTAIL_SOURCE_TOKEN"}
	plainConfig = []string{"APP_ENV", "AWS_REGION", "S3_BUCKET", "WORKER_CONCURRENCY",
		"SHUTDOWN_TIMEOUT", "LOG_LEVEL", "LIVEKIT_URL", "LIVEKIT_SIP_TRUNK_ID", "OPENAI_REALTIME_MODEL", "GOMAXPROCS",
		"OPENAI_ANALYSIS_MODEL", "LOGTAIL_INGEST_URL"}
)

// secretSources are references whose values are secrets.
func secretSources(t *testing.T, cfg *config) []string {
	t.Helper()
	out := []string{"random_password", "aws_iam_access_key.worker.secret"}
	for _, b := range cfg.blocks("variable") {
		if cfg.flag(t, b, "sensitive") {
			out = append(out, "var."+b.Labels[0])
		}
	}
	return out
}

func TestHerokuConfigVarsAreWiredAndSecretsSensitive(t *testing.T) {
	cfg := loadConfig(t)
	app := findBlock(t, cfg, "resource", "heroku_app")
	requireAttr(t, cfg, app, "stack", "container")

	secret := attr(t, app, "sensitive_config_vars")
	plain := attr(t, app, "config_vars")
	require.ElementsMatch(t, sensitiveConfig, objectKeys(t, secret))
	require.ElementsMatch(t, plainConfig, objectKeys(t, plain))

	// No secret reaches the unredacted map, even through a local.
	for _, r := range cfg.deepRefs(t, plain) {
		for _, s := range secretSources(t, cfg) {
			require.False(t, r == s || strings.HasPrefix(r, s+"."), "config_vars uses the secret %s; move it to sensitive_config_vars", r)
		}
	}

	// Wired from the resources Terraform creates, not typed in.
	wiring := map[string][]string{
		"REDIS_URL":             {"rediscloud_subscription_database.queue.public_endpoint", "random_password.redis.result"},
		"MONGODB_URI":           {"mongodbatlas_advanced_cluster.voice.connection_strings.standard_srv", "mongodbatlas_database_user.worker.username", "random_password.mongodb.result", "var.mongodb_database"},
		"AWS_ACCESS_KEY_ID":     {"aws_iam_access_key.worker.id"},
		"AWS_SECRET_ACCESS_KEY": {"aws_iam_access_key.worker.secret"},
		"LIVEKIT_API_KEY":       {"var.livekit_api_key"},
		"LIVEKIT_API_SECRET":    {"var.livekit_api_secret"},
		"OPENAI_API_KEY":        {"var.openai_api_key"},
		"LOGTAIL_SOURCE_TOKEN":  {"var.logtail_source_token"},
	}
	for key, want := range wiring {
		got := cfg.deepRefs(t, objectItem(t, secret, key))
		for _, w := range want {
			require.Contains(t, got, w, "%s must be built from %s", key, w)
		}
	}
	merge, ok := plain.(*hclsyntax.FunctionCallExpr)
	require.True(t, ok && merge.Name == "merge" && len(merge.Args) > 0, "config_vars: want merge({...}, optional settings)")
	plainObj := merge.Args[0]
	requireRefersTo(t, objectItem(t, plainObj, "S3_BUCKET"), "aws_s3_bucket.recordings")
	requireRefersTo(t, objectItem(t, plainObj, "APP_ENV"), "var.environment")
}

func TestHerokuWorkerFormation(t *testing.T) {
	cfg := loadConfig(t)
	f := findBlock(t, cfg, "resource", "heroku_formation")
	requireRefersTo(t, attr(t, f, "app_id"), "heroku_app.worker.id")
	requireAttr(t, cfg, f, "type", "worker")
	requireRefersTo(t, attr(t, f, "quantity"), "var.worker_quantity")
	// The 512 MB dyno of the operations doc.
	requireAttr(t, cfg, f, "size", "standard-1x")
}

func TestOutputsDoNotLeakSecrets(t *testing.T) {
	cfg := loadConfig(t)
	outputs := cfg.blocks("output")
	require.NotEmpty(t, outputs)
	for _, o := range outputs {
		if cfg.flag(t, o, "sensitive") {
			continue
		}
		for _, r := range cfg.deepRefs(t, attr(t, o, "value")) {
			for _, s := range secretSources(t, cfg) {
				require.False(t, r == s || strings.HasPrefix(r, s+"."), "output %q exposes %s without sensitive = true", o.Labels[0], r)
			}
			require.NotEqual(t, "local.redis_url", r, "output %q exposes REDIS_URL", o.Labels[0])
			require.NotEqual(t, "local.mongodb_uri", r, "output %q exposes MONGODB_URI", o.Labels[0])
		}
	}
}

// The worker refuses redis:// when APP_ENV=production, so production's
// Redis must keep TLS on (REDIS_URL is then rediss://).
func TestProductionRedisURLIsTLS(t *testing.T) {
	cfg := loadConfig(t)
	def := cfg.defaults["redis_enable_tls"]
	require.NotNil(t, def, "redis_enable_tls needs a default")
	require.True(t, cfg.boolean(t, def), "TLS is on unless an environment turns it off")
	if v, ok := cfg.tfvars["prod.tfvars.example"].Attributes["redis_enable_tls"]; ok {
		require.True(t, cfg.boolean(t, v.Expr), "production must not turn Redis TLS off")
	}
	requireRefersTo(t, attr(t, findBlock(t, cfg, "resource", "rediscloud_subscription_database"), "enable_tls"), "var.redis_enable_tls")
}
