package procfs

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParseSwitch(t *testing.T) {
	for in, want := range map[string]bool{"0\n": false, "1\n": true, "1": true} {
		got, err := ParseSwitch([]byte(in))
		assert.NoError(t, err, "%q", in)
		assert.Equal(t, want, got, "%q", in)
	}
	for _, in := range []string{"", "\n", "2\n", "10\n", "1 1\n", "on\n"} {
		_, err := ParseSwitch([]byte(in))
		assert.ErrorIs(t, err, ErrMalformed, "%q", in)
	}
}
