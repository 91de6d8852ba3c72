package auth

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

// TestDummyHashCost checks that an unknown user is compared against a
// hash as costly as the costliest user's, so that the time to refuse does
// not tell unknown users from known ones.
func TestDummyHashCost(t *testing.T) {
	h4, err := bcrypt.GenerateFromPassword([]byte("a"), 4)
	require.NoError(t, err)
	h5, err := bcrypt.GenerateFromPassword([]byte("b"), 5)
	require.NoError(t, err)
	f, err := Parse(strings.NewReader("user a "+string(h4)+"\nuser b "+string(h5)+"\n"), "x")
	require.NoError(t, err)
	d := f.t.Load().dummy
	require.NotNil(t, d)
	cost, err := bcrypt.Cost(d.bcrypt)
	require.NoError(t, err)
	assert.Equal(t, 5, cost, "dummy hash cost")

	f, err = Parse(strings.NewReader("anonymous on\n"), "x")
	require.NoError(t, err)
	assert.Nil(t, f.t.Load().dummy, "dummy hash made for a file without users")
}
