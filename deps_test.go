package tern_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/internal/depdoc"
)

// TestDependenciesAreDocumented: every module go.mod requires, direct or
// indirect, has a row in docs/dependencies.md with the version go.mod
// requires and a license compatible with Apache-2.0, and every row there
// names a module go.mod requires. Adding or upgrading a dependency thus
// means documenting it. Only the rows before the first "## " section are
// the root module's; the sections after hold other modules' (cluster/nats,
// its own go.mod and test) and the rest.
func TestDependenciesAreDocumented(t *testing.T) {
	required, err := depdoc.Requirements("go.mod")
	require.NoError(t, err)
	require.NotEmpty(t, required, "go.mod requires no module: the parser missed them")
	documented, err := depdoc.Table("docs/dependencies.md", "")
	require.NoError(t, err)
	assert.Empty(t, depdoc.Compare(required, documented, "docs/dependencies.md"))
}
