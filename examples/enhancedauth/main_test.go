package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRun runs the demonstration: the wrong password is refused with 0x86,
// the right one connects, the broker's signature checks out, and the
// re-authentication succeeds.
func TestRun(t *testing.T) {
	var out strings.Builder
	require.NoError(t, run(&out), "run")
	assert.Equal(t, `password "guess": refused, reason code 0x86 (wrong user name or password)
password "s3cret": connected, the broker's signature verified
re-authentication: reason code 0x00
`, out.String(), "what run told")
}
