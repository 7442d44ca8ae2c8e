#!/usr/bin/env bash
# bench.sh runs the fio benchmark of vosfs against its baselines.
#
# It builds ./cmd/vosfs, ./cmd/loopback and ./cmd/vosfs-bench into a
# temporary bin directory (removed at the end) and runs vosfs-bench with
# the arguments given, the job files of testdata/fio and the two binaries
# just built. Run it as root (it mounts FUSE filesystems and drops the page
# cache), with fio and fuse3 installed, from anywhere:
#
#	scripts/bench.sh                                  # everything, 3 rounds
#	scripts/bench.sh --rounds 1 --jobs seqwrite,randwrite-fsync-1
#	scripts/bench.sh --targets loopback,bare --out /tmp/bench
#	scripts/bench.sh -h                               # every flag
#
# The results, results.md (table), results.svg (chart) and results.json
# (every run), go to --out, by default the work directory (--dir, by
# default a new directory under /var/tmp). The targets are unmounted at the
# end, also on ^C or SIGTERM.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(mktemp -d "${TMPDIR:-/tmp}/vosfs-bench-bin.XXXXXX")
cleanup() {
	rm -rf "$bin"
}
trap cleanup EXIT

cd "$repo"
go build -o "$bin/" ./cmd/vosfs-bench
# A target whose binary does not build is skipped, with a note in the
# report, rather than the whole run.
for cmd in vosfs loopback; do
	if ! go build -o "$bin/" "./cmd/$cmd"; then
		echo "bench.sh: ./cmd/$cmd does not build: its targets will be skipped" >&2
	fi
done

# The bench runs in the background so that a signal to this script is
# passed on to it; it unmounts its targets before it exits.
"$bin/vosfs-bench" --jobdir "$repo/testdata/fio" --vosfs "$bin/vosfs" --loopback "$bin/loopback" "$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true' INT TERM HUP
# wait returns early (above 128) when a trapped signal arrives, while the
# bench is still unmounting: wait again until it has exited.
while kill -0 "$child" 2>/dev/null; do
	wait "$child" || true
done
wait "$child" && status=0 || status=$?
exit "$status"
