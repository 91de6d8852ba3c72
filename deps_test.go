package tern_test

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// compatibleLicenses returns the SPDX identifiers of licenses under which a
// dependency's code may be combined with Tern's (Apache-2.0) and shipped
// within it. A license outside this set needs a reviewer's decision before
// it is added here.
func compatibleLicenses() []string {
	return []string{"Apache-2.0", "MIT", "BSD-2-Clause", "BSD-3-Clause", "ISC"}
}

// TestDependenciesAreDocumented: every module go.mod requires, direct or
// indirect, has a row in docs/dependencies.md with the version go.mod
// requires and a license compatible with Apache-2.0, and every row there
// names a module go.mod requires. Adding or upgrading a dependency thus
// means documenting it.
func TestDependenciesAreDocumented(t *testing.T) {
	required := goModRequirements(t, "go.mod")
	require.NotEmpty(t, required, "go.mod requires no module: the parser missed them")
	documented := documentedModules(t, "docs/dependencies.md")

	for path, version := range required {
		row, ok := documented[path]
		if !assert.True(t, ok, "%s %s is in go.mod but not in docs/dependencies.md: add a row with its license (read from its LICENSE file) and what Tern uses it for", path, version) {
			continue
		}
		assert.Equal(t, version, row.version, "docs/dependencies.md: the version of %s differs from go.mod's", path)
		assert.True(t, licenseCompatible(row.license),
			"docs/dependencies.md: %s is under %q, not one of %v (nor an OR with one, nor an AND of them)", path, row.license, compatibleLicenses())
	}
	for path := range documented {
		_, ok := required[path]
		assert.True(t, ok, "docs/dependencies.md documents %s, which go.mod does not require: remove its row", path)
	}
}

// goModRequirements returns the module path and version of every require
// directive in the go.mod file at path, in its single-line and block forms.
func goModRequirements(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	out := map[string]string{}
	inBlock := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "//")
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
			continue
		case inBlock && fields[0] == ")":
			inBlock = false
			continue
		case inBlock:
		case fields[0] == "require" && len(fields) == 2 && fields[1] == "(":
			inBlock = true
			continue
		case fields[0] == "require":
			fields = fields[1:]
		default:
			continue // module, go, toolchain, replace, exclude, retract
		}
		require.Len(t, fields, 2, "%s: cannot read the requirement %q", path, sc.Text())
		out[strings.Trim(fields[0], `"`)] = fields[1]
	}
	require.NoError(t, sc.Err())
	require.False(t, inBlock, "%s: a require block is not closed", path)
	return out
}

// depRow is one module's row in docs/dependencies.md.
type depRow struct{ version, license string }

// documentedModules reads the table rows of the document at path whose first
// cell is a module path in backquotes: | `MODULE` | VERSION | LICENSE | ...
// Only the rows before the first "## " section are the root module's; the
// sections after hold other modules' (cluster/nats, its own go.mod and
// test) and the rest.
func documentedModules(t *testing.T, path string) map[string]depRow {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	out := map[string]depRow{}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "## ") {
			break
		}
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(line, "|")
		require.GreaterOrEqual(t, len(cells), 5, "%s: a row needs module, version and license cells: %q", path, line)
		module := strings.Trim(strings.TrimSpace(cells[1]), "`")
		_, dup := out[module]
		require.False(t, dup, "%s: %s has two rows", path, module)
		out[module] = depRow{version: strings.TrimSpace(cells[2]), license: strings.TrimSpace(cells[3])}
	}
	return out
}

// licenseCompatible reports whether an SPDX expression without parentheses
// allows combining the code with Apache-2.0: one compatible license, an OR
// with at least one, or an AND of only compatible ones.
func licenseCompatible(expr string) bool {
	ok := compatibleLicenses()
	ors, ands := strings.Split(expr, " OR "), strings.Split(expr, " AND ")
	switch {
	case len(ors) > 1 && len(ands) > 1:
		return false // mixed: write it out, or extend this check
	case len(ors) > 1:
		return slices.ContainsFunc(ors, func(l string) bool { return slices.Contains(ok, l) })
	default:
		for _, l := range ands {
			if !slices.Contains(ok, l) {
				return false
			}
		}
		return true
	}
}
