//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package cli

import (
	"errors"
	"os"
)

// noEcho cannot turn off a terminal's echo here: the password is read as
// typed, or use tern passwd -b.
func noEcho(*os.File) (func(), error) {
	return nil, errors.New("cannot turn off the terminal's echo on this system")
}
