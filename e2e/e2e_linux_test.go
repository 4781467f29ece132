//go:build linux

// Package e2e tests the otelcol-propeller distribution as users run it: the binary built by
// ocb, a real broker, real workloads, the Prometheus endpoint, and SIGTERM.
package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

func TestMain(m *testing.M) {
	testworkload.MainIfChild()
	os.Exit(m.Run())
}

// binary returns the distribution, building it with ocb when it is missing.
func binary(t *testing.T) string {
	t.Helper()
	return built(t, "builder-config.yaml", filepath.Join("_build", "otelcol-propeller"))
}

// built returns a build of the repository's (path relative to its root), building it with ocb
// from builderConfig when it is missing.
func built(t *testing.T, builderConfig, path string) string {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	bin := filepath.Join(root, path)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "tool", "-modfile=tools/go.mod", "builder", "--config", builderConfig)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "building %s: %s", builderConfig, out)
	return bin
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

const (
	busyID    = "550e8400-e29b-41d4-a716-446655440001"
	memID     = "550e8400-e29b-41d4-a716-446655440002"
	pendingID = "550e8400-e29b-41d4-a716-446655440003"
	propletID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
)
