package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
)

// logDest is where logs go: stdout, stderr, file (at path) or none.
type logDest struct{ kind, path string }

// levelNone is above every level the broker logs at: nothing is logged.
const levelNone = slog.LevelError + 100

// parseLevel parses -log-level.
func parseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	case "none":
		return levelNone, nil
	}
	return 0, fmt.Errorf("-log-level must be debug, info, warn, error or none, got %q", s)
}

// newLogger builds the logger the flags and mosquitto.conf ask for, and
// the output behind it, whose files SIGHUP reopens.
func newLogger(s *settings, stdout, stderr io.Writer) (*slog.Logger, *logOutput, error) {
	dests := s.logDests
	if s.logFile != "" {
		dests = []logDest{{kind: "file", path: s.logFile}}
	}
	if len(dests) == 0 {
		dests = []logDest{{kind: "stderr"}}
	}
	out := &logOutput{stdout: stdout, stderr: stderr, dests: dests, files: make([]*os.File, len(dests))}
	if err := out.Reopen(); err != nil {
		return nil, nil, err
	}
	level, err := parseLevel(s.logLevel)
	if err != nil {
		return nil, nil, err
	}
	if s.verbose {
		level = slog.LevelDebug
	}
	ho := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(out, ho)
	if s.logFormat == "json" {
		h = slog.NewJSONHandler(out, ho)
	}
	return slog.New(h), out, nil
}

// logOutput writes each log record to every destination. Files are
// opened for appending and reopened by Reopen, so that a rotated log file
// is let go on SIGHUP, as Mosquitto does.
type logOutput struct {
	mu             sync.Mutex
	stdout, stderr io.Writer
	dests          []logDest
	files          []*os.File // per dest; nil but for files
}

func (o *logOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var errs []error
	for i, d := range o.dests {
		var w io.Writer
		switch d.kind {
		case "stdout":
			w = o.stdout
		case "stderr":
			w = o.stderr
		case "file":
			w = o.files[i]
		default:
			continue
		}
		if _, err := w.Write(p); err != nil {
			errs = append(errs, err)
		}
	}
	return len(p), errors.Join(errs...)
}

// Reopen opens the log files again. A file that cannot be opened keeps
// the previous one, and the error says why.
func (o *logOutput) Reopen() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	var errs []error
	for i, d := range o.dests {
		if d.kind != "file" {
			continue
		}
		f, err := os.OpenFile(d.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			errs = append(errs, fmt.Errorf("log file: %w", err))
			continue
		}
		if o.files[i] != nil {
			o.files[i].Close()
		}
		o.files[i] = f
	}
	return errors.Join(errs...)
}

// Close closes the log files.
func (o *logOutput) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	var errs []error
	for i, f := range o.files {
		if f != nil {
			errs = append(errs, f.Close())
			o.files[i] = nil
		}
	}
	return errors.Join(errs...)
}
