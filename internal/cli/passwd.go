package cli

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/ternmq/tern/auth"
)

const passwdUsage = `Usage: tern passwd [-c | -D] [-I ITERATIONS] FILE USER
       tern passwd [-c] [-I ITERATIONS] -b FILE USER PASSWORD

Adds or updates USER in the Mosquitto password file FILE, as
mosquitto_passwd does: the password is asked twice (read from standard
input, a line each, when it is not a terminal), hashed with PBKDF2-SHA512
($7$, which Mosquitto 2 reads too) and written in place of USER's line.

`

// passwd is the passwd subcommand: mosquitto_passwd's -c, -b and -D.
func passwd(args []string, e env) error {
	fset := flag.NewFlagSet("tern passwd", flag.ContinueOnError)
	fset.SetOutput(e.stderr)
	create := fset.Bool("c", false, "create a new password file, replacing FILE if it exists")
	batch := fset.Bool("b", false, "batch mode: the password is the last argument")
	del := fset.Bool("D", false, "delete USER from FILE")
	iterations := fset.Int("I", 0, "PBKDF2 iterations (default 210000; mosquitto_passwd uses 101)")
	hashName := fset.String("H", "sha512-pbkdf2", "hash: sha512-pbkdf2 only")
	fset.Usage = func() {
		fmt.Fprint(e.stderr, passwdUsage)
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		return err
	}
	want := 2
	if *batch {
		want = 3
	}
	switch {
	case fset.NArg() != want:
		fset.Usage()
		return fmt.Errorf("passwd: want %d arguments, got %d", want, fset.NArg())
	case *create && *del:
		return errors.New("passwd: -c and -D cannot be used together")
	case *del && *batch:
		return errors.New("passwd: -D takes no password (-b)")
	case *hashName != "sha512-pbkdf2":
		return fmt.Errorf("passwd: -H %s: only sha512-pbkdf2 is supported", *hashName)
	case *iterations < 0:
		return fmt.Errorf("passwd: -I must be positive, got %d", *iterations)
	}
	file, user := fset.Arg(0), fset.Arg(1)
	if *del {
		if err := auth.DeleteUser(file, user); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("passwd: user %q not in %s: %w", user, file, err)
			}
			return err
		}
		return nil
	}
	if !*create {
		if _, err := os.Stat(file); err != nil {
			return fmt.Errorf("passwd: %w (-c creates a new file)", err)
		}
	}
	var pw string
	if *batch {
		pw = fset.Arg(2)
	} else {
		var err error
		if pw, err = askPassword(e); err != nil {
			return err
		}
	}
	if pw == "" {
		return errors.New("passwd: empty password")
	}
	hash, err := auth.HashPBKDF2([]byte(pw), *iterations)
	if err != nil {
		return err
	}
	if *create {
		if err := os.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("passwd: %w", err)
		}
	}
	return auth.SetPasswordHash(file, user, hash)
}

// askPassword reads the password twice, without echo on a terminal.
func askPassword(e env) (string, error) {
	f, _ := e.stdin.(*os.File)
	var restore func()
	if f != nil {
		var err error
		if restore, err = noEcho(f); err != nil {
			restore = nil // not a terminal: read the lines as they come
		}
	}
	r := bufio.NewReader(e.stdin)
	read := func(prompt string) (string, error) {
		if restore != nil {
			fmt.Fprint(e.stderr, prompt)
			defer fmt.Fprintln(e.stderr)
		}
		line, err := r.ReadString('\n')
		if err != nil && (!errors.Is(err, io.EOF) || line == "") {
			return "", fmt.Errorf("passwd: reading the password: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	if restore != nil {
		defer restore()
	}
	pw, err := read("Password: ")
	if err != nil {
		return "", err
	}
	again, err := read("Reenter password: ")
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", errors.New("passwd: passwords do not match")
	}
	return pw, nil
}
