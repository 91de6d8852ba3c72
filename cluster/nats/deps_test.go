package nats

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDependenciesAreDocumented: every module this module's go.mod
// requires (but the root module, replaced by ../..) has a row, with the
// same version and a license compatible with Apache-2.0, in the section of
// docs/dependencies.md for this module; and every row there names a
// module go.mod requires.
func TestDependenciesAreDocumented(t *testing.T) {
	required := requirements(t, "go.mod")
	delete(required, "github.com/ternmq/tern")
	require.NotEmpty(t, required)
	documented := section(t, "../../docs/dependencies.md", "## Module `github.com/ternmq/tern/cluster/nats`")
	require.NotEmpty(t, documented, "docs/dependencies.md has no section for this module")
	compatible := []string{"Apache-2.0", "MIT", "BSD-2-Clause", "BSD-3-Clause", "ISC"}
	for path, version := range required {
		row, ok := documented[path]
		if !assert.True(t, ok, "%s %s is in go.mod but not in docs/dependencies.md's section for cluster/nats", path, version) {
			continue
		}
		assert.Equal(t, version, row[0], "the version of %s", path)
		ok = false
		for _, l := range strings.Split(row[1], " AND ") {
			ok = slices.Contains(compatible, l)
			if !ok {
				break
			}
		}
		assert.True(t, ok, "%s is under %q", path, row[1])
	}
	for path := range documented {
		_, ok := required[path]
		assert.True(t, ok, "docs/dependencies.md documents %s for cluster/nats, which its go.mod does not require", path)
	}
}

// requirements returns the modules and versions the go.mod at path
// requires.
func requirements(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	out := map[string]string{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "//")
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
			continue
		case in && fields[0] == ")":
			in = false
			continue
		case in:
		case fields[0] == "require" && len(fields) == 2 && fields[1] == "(":
			in = true
			continue
		case fields[0] == "require":
			fields = fields[1:]
		default:
			continue
		}
		require.Len(t, fields, 2, "%s: %q", path, sc.Text())
		out[fields[0]] = fields[1]
	}
	require.NoError(t, sc.Err())
	return out
}

// section returns the table rows (module -> version, license) under
// heading, up to the next "## " heading.
func section(t *testing.T, path, heading string) map[string][2]string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	out := map[string][2]string{}
	in := false
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\n")
		if strings.HasPrefix(line, "## ") {
			in = line == heading
			continue
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(line, "|")
		require.GreaterOrEqual(t, len(cells), 5, "%q", line)
		out[strings.Trim(strings.TrimSpace(cells[1]), "`")] = [2]string{strings.TrimSpace(cells[2]), strings.TrimSpace(cells[3])}
	}
	return out
}
