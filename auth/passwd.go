package auth

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// This file reads and edits Mosquitto's password_file: one "user:HASH"
// line per user, as mosquitto_passwd writes it.

// pwLine is one user line of a password file.
type pwLine struct {
	line int
	user string
	hash *pwHash
}

// parsePasswords reads a password file. Like Mosquitto, it skips lines
// that start with '#' and blank lines, and trims blanks around the user
// name and the hash. The hash is $7$ or $6$ (mosquitto_passwd) or bcrypt.
// Unlike Mosquitto, which skips or drops such lines with a log message,
// it refuses a line without ':', with an empty user name or hash, with an
// unknown or broken hash, or a user listed twice, naming the line.
func parsePasswords(r io.Reader, name string) (map[string]*pwHash, error) {
	lines, err := readPasswordLines(r, name)
	if err != nil {
		return nil, err
	}
	hashes := make(map[string]*pwHash, len(lines))
	for _, l := range lines {
		hashes[l.user] = l.hash
	}
	return hashes, nil
}

func readPasswordLines(r io.Reader, name string) ([]pwLine, error) {
	var (
		errs  []*ParseError
		out   []pwLine
		first = map[string]int{}
	)
	errorf := func(n int, format string, args ...any) {
		errs = append(errs, &ParseError{Name: name, Line: n, Err: fmt.Errorf(format, args...)})
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	n := 0
	for sc.Scan() && len(errs) < maxErrors {
		n++
		text := sc.Text()
		if isPasswordComment(text) {
			continue
		}
		user, hash, ok := strings.Cut(text, ":")
		user, hash = strings.TrimSpace(user), strings.TrimSpace(hash)
		switch {
		case !ok:
			errorf(n, "want user:hash, found no ':'")
			continue
		case user == "":
			errorf(n, "empty user name before ':'")
			continue
		case !utf8.ValidString(user):
			errorf(n, "user name is not valid UTF-8")
			continue
		case hash == "":
			errorf(n, "user %q has no password hash", user)
			continue
		case strings.Contains(hash, ":"):
			errorf(n, "user %q: unexpected ':' after the hash", user)
			continue
		}
		h, err := parseHash(hash)
		if err != nil {
			if !strings.HasPrefix(hash, "$") {
				err = fmt.Errorf("%w (a plain-text password? mosquitto_passwd -U hashes them)", err)
			}
			errorf(n, "user %q: %w", user, err)
			continue
		}
		if prev, dup := first[user]; dup {
			errorf(n, "duplicate user %q (first defined on line %d)", user, prev)
			continue
		}
		first[user] = n
		out = append(out, pwLine{line: n, user: user, hash: h})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			errorf(n+1, "line longer than %d bytes", maxLine)
		} else {
			errs = append(errs, &ParseError{Name: name, Err: fmt.Errorf("read: %w", err)})
		}
	}
	if len(errs) >= maxErrors {
		errs = append(errs, &ParseError{Name: name, Err: errors.New("too many errors, stopped reading")})
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	return out, nil
}

// isPasswordComment reports whether a password file line holds no user: a
// blank line, or one whose first non-blank character is '#'.
func isPasswordComment(line string) bool {
	t := strings.TrimSpace(line)
	return t == "" || t[0] == '#'
}

// SetPassword sets user's password in the Mosquitto password file at path,
// as "mosquitto_passwd -b path user password" does: it replaces the user's
// line, or adds one at the end, and keeps every other line as it is. The
// hash is $7$ (PBKDF2-HMAC-SHA512) with DefaultPBKDF2Iterations, which
// Mosquitto 2 reads too. A missing file is created with mode 0600. The
// file is replaced atomically (a new file renamed over it), keeping its
// mode. Concurrent edits of one file may lose one another's change, as
// with mosquitto_passwd.
func SetPassword(path, user, password string) error {
	if err := checkPasswdUser(user); err != nil {
		return err
	}
	h, err := HashPBKDF2([]byte(password), 0)
	if err != nil {
		return err
	}
	return SetPasswordHash(path, user, h)
}

// SetPasswordHash is SetPassword with a hash made by the caller: a $7$
// hash from HashPBKDF2 with another iteration count, a bcrypt hash from
// HashPassword (which Tern reads and Mosquitto does not), or a hash taken
// from another file.
func SetPasswordHash(path, user, hash string) error {
	if err := checkPasswdUser(user); err != nil {
		return err
	}
	if _, err := parseHash(hash); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return editPasswords(path, user, user+":"+hash, true)
}

// DeleteUser removes user's line from the Mosquitto password file at path,
// as "mosquitto_passwd -D path user" does, keeping every other line. It is
// an error wrapping fs.ErrNotExist when the file has no such user.
func DeleteUser(path, user string) error {
	return editPasswords(path, user, "", false)
}

// checkPasswdUser refuses a user name that a password file cannot hold.
func checkPasswdUser(user string) error {
	switch {
	case user == "":
		return errors.New("auth: empty user name")
	case strings.ContainsAny(user, ":\r\n\x00"):
		return fmt.Errorf("auth: user name %q contains ':', a line break or NUL, which a password file cannot hold", user)
	case strings.TrimSpace(user) != user:
		return fmt.Errorf("auth: user name %q starts or ends with a blank, which Mosquitto trims", user)
	case user[0] == '#':
		return fmt.Errorf("auth: user name %q starts with '#', which makes a comment line", user)
	case !utf8.ValidString(user):
		return fmt.Errorf("auth: user name %q is not valid UTF-8", user)
	}
	return nil
}

// editPasswords rewrites the password file at path with user's line
// replaced by line, or removed when line is "". add says whether a missing
// user (or file) gets line added; otherwise it is an error.
func editPasswords(path, user, line string, add bool) error {
	old, err := os.ReadFile(path)
	mode := fs.FileMode(0o600)
	switch {
	case errors.Is(err, fs.ErrNotExist) && add:
		old = nil
	case err != nil:
		return fmt.Errorf("auth: %w", err)
	default:
		if fi, err := os.Stat(path); err == nil {
			mode = fi.Mode().Perm()
		}
	}
	// Refuse to edit a file that does not parse: the mistake would stay.
	if _, err := readPasswordLines(bytes.NewReader(old), path); err != nil {
		return err
	}
	var out bytes.Buffer
	found := false
	for l := range strings.Lines(string(old)) {
		text := strings.TrimRight(l, "\r\n")
		if !isPasswordComment(text) {
			u, _, _ := strings.Cut(text, ":")
			if strings.TrimSpace(u) == user {
				found = true
				if line != "" {
					out.WriteString(line + "\n")
				}
				continue
			}
		}
		out.WriteString(l)
		if !strings.HasSuffix(l, "\n") {
			out.WriteString("\n") // the last line had no line end
		}
	}
	switch {
	case !found && !add:
		return fmt.Errorf("auth: %s has no user %q: %w", path, user, fs.ErrNotExist)
	case !found:
		out.WriteString(line + "\n")
	}
	return writeAtomic(path, out.Bytes(), mode)
}

// writeAtomic replaces the file at path with data: it writes a new file
// in the same directory, syncs it and renames it over path, so that a
// reader sees the old or the new content, never a part.
func writeAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if err = f.Chmod(mode); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	// Make the rename itself durable.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
