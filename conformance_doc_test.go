package tern_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConformanceDocNamesRealTests keeps CONFORMANCE.md honest: every test
// it names exists, in the package it says, and both tables have a row for
// every statement.
func TestConformanceDocNamesRealTests(t *testing.T) {
	doc, err := os.ReadFile("CONFORMANCE.md")
	require.NoError(t, err)
	// All test sources, by package directory.
	sources := map[string]string{}
	err = filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sources[filepath.Dir(path)] += string(b)
		}
		return nil
	})
	require.NoError(t, err)
	// 3.1.1 rows start "| MQTT-", MQTT 5.0 rows "| v5 MQTT-".
	row := regexp.MustCompile(`(?m)^\| (v5 )?(MQTT-[0-9.-]+) \|.*$`)
	name := regexp.MustCompile("`(?:([a-z/]+)\\.)?((?:Test|Fuzz|Example)\\w*)`")
	rows := row.FindAllStringSubmatch(string(doc), -1)
	n5 := 0
	for _, r := range rows {
		if r[1] != "" {
			n5++
		}
	}
	require.Equal(t, 141, len(rows)-n5, "CONFORMANCE.md MQTT 3.1.1 statement rows: Appendix B has 141")
	require.Equal(t, 251, n5, "CONFORMANCE.md MQTT 5.0 statement rows: the specification has 251")
	for _, r := range rows {
		for _, m := range name.FindAllStringSubmatch(r[0], -1) {
			dir := "."
			if m[1] != "" {
				dir = filepath.FromSlash(m[1])
			}
			assert.True(t, regexp.MustCompile(`func `+m[2]+`\(`).MatchString(sources[dir]), "%s%s names %s, which is not a test in %s", r[1], r[2], m[0], dir)
		}
	}
}
