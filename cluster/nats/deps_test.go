package nats

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/ternmq/tern/internal/depdoc"
)

// TestDependenciesAreDocumented: every module this module's go.mod
// requires (but the root module, replaced by ../..) has a row, with the
// same version and a license compatible with Apache-2.0, in the section of
// docs/dependencies.md for this module; and every row there names a
// module go.mod requires.
func TestDependenciesAreDocumented(t *testing.T) {
	required, err := depdoc.Requirements("go.mod")
	require.NoError(t, err)
	delete(required, "github.com/ternmq/tern")
	require.NotEmpty(t, required, "go.mod requires no module: the parser missed them")
	section := "## Module `github.com/ternmq/tern/cluster/nats`"
	documented, err := depdoc.Table("../../docs/dependencies.md", section)
	require.NoError(t, err)
	require.NotEmpty(t, documented, "docs/dependencies.md has no section for this module")
	assert.Empty(t, depdoc.Compare(required, documented, "docs/dependencies.md's section "+section))
}
