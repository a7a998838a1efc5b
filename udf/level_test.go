package udf

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLevelText(t *testing.T) {
	for _, l := range []Level{OK, Info, Warning, Critical} {
		b, err := l.MarshalText()
		require.NoError(t, err)
		var back Level
		require.NoError(t, back.UnmarshalText([]byte(strings.ToLower(string(b)))))
		assert.Equal(t, l, back)
	}
	assert.Equal(t, "unknown", Level(9).String())
	_, err := ParseLevel("SEVERE")
	assert.ErrorContains(t, err, `unknown alert level "SEVERE"`)
}
