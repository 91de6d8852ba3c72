package auth

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestDummyHashCost checks that an unknown user is compared against a
// hash as costly as the costliest user's, so that the time to refuse does
// not tell unknown users from known ones.
func TestDummyHashCost(t *testing.T) {
	h4, _ := bcrypt.GenerateFromPassword([]byte("a"), 4)
	h5, _ := bcrypt.GenerateFromPassword([]byte("b"), 5)
	f, err := Parse(strings.NewReader("user a "+string(h4)+"\nuser b "+string(h5)+"\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	cost, err := bcrypt.Cost(f.t.Load().dummy)
	if err != nil || cost != 5 {
		t.Errorf("dummy hash cost = %d, %v; want 5", cost, err)
	}

	f, err = Parse(strings.NewReader("anonymous on\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	if d := f.t.Load().dummy; d != nil {
		t.Errorf("dummy hash made for a file without users: %q", d)
	}
}
