// Package depdoc reads what the dependency tests of the root module and of
// cluster/nats compare: the requirements of a go.mod file and the tables of
// docs/dependencies.md.
package depdoc

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"
)

// CompatibleLicenses are the SPDX identifiers of licenses under which a
// dependency's code may be combined with Tern's (Apache-2.0) and shipped
// within it. A license outside this set needs a reviewer's decision before
// it is added here.
func CompatibleLicenses() []string {
	return []string{"Apache-2.0", "MIT", "BSD-2-Clause", "BSD-3-Clause", "ISC"}
}

// Requirements returns the module path and version of every require
// directive in the go.mod file at path, in its single-line and block forms.
func Requirements(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
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
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s: cannot read the requirement %q", path, sc.Text())
		}
		out[strings.Trim(fields[0], `"`)] = fields[1]
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if inBlock {
		return nil, fmt.Errorf("%s: a require block is not closed", path)
	}
	return out, nil
}

// Row is one module's row in docs/dependencies.md.
type Row struct{ Version, License string }

// Table reads the table rows of the document at path whose first cell is a
// module path in backquotes (| `MODULE` | VERSION | LICENSE | ...) in the
// section under heading, up to the next "## " heading; heading "" is the
// part before the first "## " heading.
func Table(path, heading string) (map[string]Row, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]Row{}
	in := heading == ""
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
		if len(cells) < 5 {
			return nil, fmt.Errorf("%s: a row needs module, version and license cells: %q", path, line)
		}
		module := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if _, dup := out[module]; dup {
			return nil, fmt.Errorf("%s: %s has two rows", path, module)
		}
		out[module] = Row{Version: strings.TrimSpace(cells[2]), License: strings.TrimSpace(cells[3])}
	}
	return out, nil
}

// LicenseCompatible reports whether an SPDX expression without parentheses
// allows combining the code with Apache-2.0: one compatible license, an OR
// with at least one, or an AND of only compatible ones.
func LicenseCompatible(expr string) bool {
	ok := CompatibleLicenses()
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

// Compare lists what keeps documented, the rows of docs/dependencies.md
// named by where, from describing required, a go.mod's requirements: a
// module without a row, a row with another version or a license not
// compatible with Apache-2.0, a row for a module not required.
func Compare(required map[string]string, documented map[string]Row, where string) []string {
	var problems []string
	for path, version := range required {
		row, ok := documented[path]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s %s is in go.mod but not in %s: add a row with its license (read from its LICENSE file) and what Tern uses it for", path, version, where))
		case row.Version != version:
			problems = append(problems, fmt.Sprintf("%s: the version of %s is %s, go.mod's %s", where, path, row.Version, version))
		case !LicenseCompatible(row.License):
			problems = append(problems, fmt.Sprintf("%s: %s is under %q, not one of %v (nor an OR with one, nor an AND of them)", where, path, row.License, CompatibleLicenses()))
		}
	}
	for path := range documented {
		if _, ok := required[path]; !ok {
			problems = append(problems, fmt.Sprintf("%s documents %s, which go.mod does not require: remove its row", where, path))
		}
	}
	slices.Sort(problems)
	return problems
}
