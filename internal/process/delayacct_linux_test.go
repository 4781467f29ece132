//go:build linux

package process

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
)

func TestDelayAccounting(t *testing.T) {
	root := t.TempDir()
	s := &Source{root: root}
	_, err := s.DelayAccounting()
	assert.ErrorIs(t, err, os.ErrNotExist, "a kernel without the switch")

	file := filepath.Join(root, "sys/kernel/task_delayacct")
	require.NoError(t, os.MkdirAll(filepath.Dir(file), 0o755))
	for content, want := range map[string]bool{"0\n": false, "1\n": true} {
		require.NoError(t, os.WriteFile(file, []byte(content), 0o600))
		on, err := s.DelayAccounting()
		require.NoError(t, err)
		assert.Equal(t, want, on, "%q", content)
	}
	require.NoError(t, os.WriteFile(file, []byte("yes\n"), 0o600))
	_, err = s.DelayAccounting()
	assert.ErrorIs(t, err, procfs.ErrMalformed)
	assert.ErrorContains(t, err, file, "the error names the file")
}
