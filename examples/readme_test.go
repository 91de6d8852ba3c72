package examples_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// checkedSections are the README sections whose Go snippets must be copies
// of code that compiles (a test, an example or a program in the
// repository), so that the README cannot drift from the API.
var checkedSections = []string{"Test an IoT backend in memory", "Examples"}

// TestREADMESnippetsCompile: every Go snippet of checkedSections appears,
// line for line (spacing aside), in a .go file of the repository.
func TestREADMESnippetsCompile(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	sources := goSources(t, "..")
	for _, section := range checkedSections {
		text := sectionText(string(readme), section)
		require.NotEmpty(t, text, "README.md has no section %q", section)
		for _, snippet := range goSnippets(text) {
			found := false
			for _, src := range sources {
				if containsLines(src, normalize(snippet)) {
					found = true
					break
				}
			}
			assert.True(t, found, "README.md, section %q: this snippet is in no .go file; keep it a copy of a test or example:\n%s", section, snippet)
		}
	}
}

// goSources returns the normalized lines of every .go file under root.
func goSources(t *testing.T, root string) [][]string {
	t.Helper()
	var out [][]string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root:
			return filepath.SkipDir
		case d.IsDir() || !strings.HasSuffix(path, ".go"):
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out = append(out, normalize(string(b)))
		return nil
	})
	require.NoError(t, err, "reading the Go sources")
	return out
}

// sectionText returns the text of the "## title" section of a Markdown
// document, up to the next "## " heading.
func sectionText(doc, title string) string {
	_, rest, ok := strings.Cut(doc, "\n## "+title+"\n")
	if !ok {
		return ""
	}
	text, _, _ := strings.Cut(rest, "\n## ")
	return text
}

// goSnippets returns the contents of the ```go fences in text.
func goSnippets(text string) []string {
	var out []string
	for {
		_, rest, ok := strings.Cut(text, "```go\n")
		if !ok {
			return out
		}
		snippet, after, _ := strings.Cut(rest, "```")
		out = append(out, snippet)
		text = after
	}
}

// normalize returns the non-blank lines of s, each with its runs of spaces
// and tabs made one space, so that gofmt's alignment does not matter.
func normalize(s string) []string {
	var out []string
	for line := range strings.Lines(s) {
		if f := strings.Fields(line); len(f) > 0 {
			out = append(out, strings.Join(f, " "))
		}
	}
	return out
}

// containsLines reports whether want appears in lines as a contiguous run.
func containsLines(lines, want []string) bool {
	if len(want) == 0 {
		return true
	}
	for i := 0; i+len(want) <= len(lines); i++ {
		match := true
		for j := range want {
			if lines[i+j] != want[j] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}
