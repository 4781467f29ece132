#!/usr/bin/env bash
# Footprint of a built collector (BENCHMARKS.md, "Architectures and the edge build"): VmRSS
# after a steady period and CPU (utime+stime of /proc/<pid>/stat) over a window, with TASKS
# `sleep` processes as tasks on an INTERVAL profile (TASKS=0: the receiver with no tasks, idle RSS).
#
#   scripts/footprint.sh BINARY [CONFIG...]
#   scripts/footprint.sh _build-edge/otelcol-propeller-edge examples/edge.yaml
#   TASKS=0 scripts/footprint.sh _build/otelcol-propeller examples/edge.yaml
#
# Each CONFIG is passed with --config; an overlay written here comes last and adds the tasks
# (by pid, profile `footprint`), a proplet_id, and free ports (PORT_BASE..PORT_BASE+2 for
# health_check, the prometheus exporter and the Collector's own metrics) so runs can go side by
# side. The process runs with the caller's environment: GOMEMLIMIT, GOGC, GODEBUG apply.
# Environment: TASKS (100), INTERVAL (10s), STEADY (60, seconds before RSS is read), WINDOW (60,
# seconds of CPU measured), PORT_BASE (19100), LOG (a file to keep the collector's output in). Prints one line of key=value:
# rss_after_<STEADY>s with its anonymous (heap, stacks, runtime) and file-backed (the executable's
# own pages, the queue's mapped file) parts from /proc/<pid>/status, rss_end after the CPU window,
# hwm the peak (VmHWM, reached during start-up when the pagetrim extension runs), cpu over WINDOW.
set -euo pipefail
bin=${1:?usage: scripts/footprint.sh BINARY [CONFIG...]}
shift
TASKS=${TASKS:-100} INTERVAL=${INTERVAL:-10s} STEADY=${STEADY:-60} WINDOW=${WINDOW:-60}
PORT_BASE=${PORT_BASE:-19100}
: "${PROPLET_ID:=7c9e6679-7425-40de-944b-e07fc1f90ae7}" "${PROPLET_DOMAIN_ID:=footprint}" "${PROPLET_CHANNEL_ID:=footprint}"
: "${PROPLET_TENANT_ID:=footprint}" "${PROPLET_ENTITY_ID:=footprint-$PORT_BASE}" "${PROPLET_API_KEY:=footprint}"
export PROPLET_ID PROPLET_DOMAIN_ID PROPLET_TENANT_ID PROPLET_CHANNEL_ID PROPLET_ENTITY_ID PROPLET_API_KEY

work=$(mktemp -d)
pids=()
cleanup() {
	[ -n "${LOG:-}" ] && cp "$work/log" "$LOG" 2>/dev/null
	[ -n "${col:-}" ] && kill "$col" 2>/dev/null && wait "$col" 2>/dev/null || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

# A stand-in proplet, so a configuration that finds the proplet by its executable name
# (examples/agent.yaml, examples/edge.yaml: '^proplet$') finds it, as on a real host, rather
# than scanning /proc for it every second.
cp "$(command -v sleep)" "$work/proplet"
"$work/proplet" 100000 &
pids+=("$!")
proplet=$!
for ((i = 0; i < TASKS; i++)); do
	sleep 100000 &
	pids+=("$!")
done

{
	echo "extensions:"
	echo "  health_check: { endpoint: 127.0.0.1:$PORT_BASE }"
	echo "  file_storage: { directory: $work/queue, create_directory: true }"
	echo "receivers:"
	echo "  proplet:"
	echo "    proplet_id: $PROPLET_ID"
	echo "    profiles:"
	echo "      footprint: { interval: $INTERVAL }"
	if ((TASKS > 0)); then
		echo "    tasks:"
		i=0
		for p in "${pids[@]}"; do
			[ "$p" = "$proplet" ] && continue
			printf '      - { id: 00000000-0000-4000-8000-%012d, name: sleep-%d, pid: %d, profile: footprint }\n' "$i" "$i" "$p"
			i=$((i + 1))
		done
	fi
	if grep -q '^  prometheus:' "$@" 2>/dev/null; then
		echo "exporters:"
		echo "  prometheus: { endpoint: 127.0.0.1:$((PORT_BASE + 1)) }"
	fi
	# only where the configs already serve the Collector's own metrics (level none has no reader)
	if grep -q 'pull:' "$@" 2>/dev/null; then
		echo "service:"
		echo "  telemetry:"
		echo "    metrics:"
		echo "      readers:"
		echo "        - pull: { exporter: { prometheus: { host: 127.0.0.1, port: $((PORT_BASE + 2)) } } }"
	fi
} >"$work/overlay.yaml"

# The binary as an installed one is: written back to disk. The edge build's pagetrim extension
# pages out its executable's start-up pages; pages of a file still dirty in the page cache (a
# binary built or copied seconds ago) are only unmapped and come back with their neighbours.
# Runs side by side use one copy of the binary each: the kernel pages out no page that two
# processes map.
sync -- "$bin"

args=()
for c in "$@"; do args+=(--config "$c"); done
args+=(--config "$work/overlay.yaml")
"$bin" "${args[@]}" >"$work/log" 2>&1 &
col=$!

cpu() { awk '{print $14 + $15}' "/proc/$col/stat"; }
sleep "$STEADY"
if ! kill -0 "$col" 2>/dev/null; then
	cat "$work/log" >&2
	echo "the collector exited" >&2
	exit 1
fi
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$col/status")
anon=$(awk '/^RssAnon/ {print $2}' "/proc/$col/status")
file=$(awk '/^RssFile/ {print $2}' "/proc/$col/status")
c0=$(cpu)
sleep "$WINDOW"
c1=$(cpu)
rss2=$(awk '/^VmRSS/ {print $2}' "/proc/$col/status")
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$col/status")
tck=$(getconf CLK_TCK)
size=$(stat -c %s "$bin")
warn=$(grep -c -E 'warn|error' "$work/log" || true)
awk -v b="$bin" -v s="$size" -v t="$TASKS" -v iv="$INTERVAL" -v r="$rss" -v r2="$rss2" -v h="$hwm" -v an="$anon" -v fi="$file" \
	-v c="$((c1 - c0))" -v tk="$tck" -v w="$WINDOW" -v wl="$warn" 'BEGIN {
	printf "binary=%s size=%d tasks=%d interval=%s rss_after_%ds=%.1fMiB (anon %.1f, file %.1f) rss_end=%.1fMiB hwm=%.1fMiB cpu=%.2f%% (of one core over %ds) log_warnings=%d\n",
		b, s, t, iv, '"$STEADY"', r / 1024, an / 1024, fi / 1024, r2 / 1024, h / 1024, 100 * c / tk / w, w, wl
}'
