package tern_test

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
)

// TestChangelogMatchesVersion: CHANGELOG.md, in the Keep a Changelog form,
// opens with an Unreleased section where changes gather until a release, and
// its latest release is the version the broker reports (tern.Version, also
// on $SYS/broker/version). Releasing means renaming Unreleased to the new
// version and changing Version with it.
func TestChangelogMatchesVersion(t *testing.T) {
	b, err := os.ReadFile("CHANGELOG.md")
	require.NoError(t, err)
	doc := string(b)
	heading := regexp.MustCompile(`(?m)^## \[([^\]]+)\](?: - (.*?))?[ \t]*$`)
	sections := heading.FindAllStringSubmatch(doc, -1)
	require.NotEmpty(t, sections, "CHANGELOG.md has no sections headed ## [VERSION] - YYYY-MM-DD")
	require.Equal(t, "Unreleased", sections[0][1], "CHANGELOG.md's first section must be ## [Unreleased]")
	require.Empty(t, sections[0][2], "the Unreleased section has no date")
	require.Greater(t, len(sections), 1, "CHANGELOG.md has no released version")

	// The link references at the end: [NAME]: URL.
	var links []string
	for _, m := range regexp.MustCompile(`(?m)^\[([^\]]+)\]: \S+$`).FindAllStringSubmatch(doc, -1) {
		links = append(links, m[1])
	}

	var newer []int
	var newerDate time.Time
	for i, s := range sections[1:] {
		name, date := s[1], s[2]
		require.NotEqual(t, "Unreleased", name, "CHANGELOG.md has a second Unreleased section")
		v := semver(t, name)
		d, err := time.Parse(time.DateOnly, date)
		require.NoError(t, err, "release %s: the date after its heading must be YYYY-MM-DD", name)
		if i > 0 {
			assert.Negative(t, slices.Compare(v, newer), "release %s is listed below an older release", name)
			assert.False(t, d.After(newerDate), "release %s is dated after the release above it", name)
		}
		newer, newerDate = v, d
		assert.Contains(t, links, name, "release %s has no link reference at the end of CHANGELOG.md", name)
	}
	assert.Contains(t, links, "Unreleased", "the Unreleased section has no link reference at the end of CHANGELOG.md")

	latest := sections[1][1]
	assert.Equal(t, "tern "+latest, tern.Version, "tern.Version must name CHANGELOG.md's latest release")
}

// semver parses MAJOR.MINOR.PATCH.
func semver(t *testing.T, s string) []int {
	t.Helper()
	parts := strings.Split(s, ".")
	require.Len(t, parts, 3, "version %q is not MAJOR.MINOR.PATCH", s)
	v := make([]int, 3)
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		require.NoError(t, err, "version %q is not MAJOR.MINOR.PATCH", s)
		require.False(t, n < 0 || len(p) > 1 && p[0] == '0', "version %q is not MAJOR.MINOR.PATCH", s)
		v[i] = n
	}
	return v
}
