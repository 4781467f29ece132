// Package procfs parses the Linux /proc and cgroup files this project reads, one small
// parser per kernel file, in the shape of prometheus/procfs but built for a sampling hot
// path: every parser works in place on a caller's buffer and allocates nothing.
//
// The parsers are plain functions over []byte so they compile and are fuzzed on every
// platform; only the code that opens the files lives behind a Linux build tag (in
// internal/process).
package procfs // import "github.com/otelcol-propeller/otelcol-propeller/internal/procfs"
