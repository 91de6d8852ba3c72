package depdoc

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLicenseCompatible(t *testing.T) {
	for expr, want := range map[string]bool{
		"MIT":                                 true,
		"BSD-3-Clause AND Apache-2.0 AND MIT": true,
		"GPL-2.0 OR MIT":                      true,
		"GPL-2.0":                             false,
		"MIT AND GPL-2.0":                     false,
		"MIT OR GPL-2.0 AND ISC":              false,
	} {
		assert.Equal(t, want, LicenseCompatible(expr), expr)
	}
}

func TestRequirementsAndTable(t *testing.T) {
	dir := t.TempDir()
	mod := filepath.Join(dir, "go.mod")
	require.NoError(t, os.WriteFile(mod, []byte("module x\n\ngo 1.26\n\nrequire a.example/one v1.0.0\n\nrequire (\n\tb.example/two v0.2.0 // indirect\n)\n\nreplace c.example/three => ../three\n"), 0o600))
	req, err := Requirements(mod)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"a.example/one": "v1.0.0", "b.example/two": "v0.2.0"}, req)

	doc := filepath.Join(dir, "deps.md")
	require.NoError(t, os.WriteFile(doc, []byte("# Deps\n\n| `a.example/one` | v1.0.0 | MIT | yes | x |\n\n## Module `y`\n\n| `b.example/two` | v0.2.0 | ISC | no | y |\n\n## Other\n\n| `c.example/three` | v3 | MIT | no | z |\n"), 0o600))
	root, err := Table(doc, "")
	require.NoError(t, err)
	assert.Equal(t, map[string]Row{"a.example/one": {"v1.0.0", "MIT"}}, root)
	y, err := Table(doc, "## Module `y`")
	require.NoError(t, err)
	assert.Equal(t, map[string]Row{"b.example/two": {"v0.2.0", "ISC"}}, y)
}

func TestCompare(t *testing.T) {
	required := map[string]string{"a": "v1", "b": "v2", "c": "v3"}
	documented := map[string]Row{"a": {"v1", "MIT"}, "b": {"v1", "MIT"}, "c": {"v3", "GPL-2.0"}, "d": {"v4", "MIT"}}
	assert.ElementsMatch(t, []string{
		"the table: the version of b is v1, go.mod's v2",
		`the table: c is under "GPL-2.0", not one of [Apache-2.0 MIT BSD-2-Clause BSD-3-Clause ISC] (nor an OR with one, nor an AND of them)`,
		"the table documents d, which go.mod does not require: remove its row",
	}, Compare(required, documented, "the table"))
	delete(documented, "a")
	assert.Contains(t, Compare(required, documented, "the table"),
		"a v1 is in go.mod but not in the table: add a row with its license (read from its LICENSE file) and what Tern uses it for")
}
