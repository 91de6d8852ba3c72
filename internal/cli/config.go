package cli

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// Both config files Tern reads, its own (-config) and Mosquitto's (-c),
// are lines of "key value": the key is the first word, the value the rest
// of the line with the blanks around it removed (so it may hold spaces, as
// a path may). A line whose first non-blank character is '#' is a comment;
// blank lines are skipped.

// position is where a config file sets a key.
type position struct {
	file string
	line int
	key  string
}

func (p position) String() string { return fmt.Sprintf("%s:%d: %s", p.file, p.line, p.key) }

// configError is a mistake in a config file: it names the file, the line
// and the key.
type configError struct {
	position
	err error
}

func (e *configError) Error() string { return e.position.String() + ": " + e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// configLine is one key and its value.
type configLine struct {
	position
	value string
}

func (l configLine) errorf(format string, args ...any) error {
	return &configError{l.position, fmt.Errorf(format, args...)}
}

// readConfigLines reads the key and value lines of a config file.
func readConfigLines(path string) ([]configLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []configLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		key, value, _ := strings.Cut(text, " ")
		if k, v, ok := strings.Cut(key, "\t"); ok {
			key, value = k, v+" "+value
		}
		out = append(out, configLine{position{path, n, key}, strings.TrimSpace(value)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return out, nil
}
