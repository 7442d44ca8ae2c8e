#!/usr/bin/env bash
# fio-verify.sh: write files with fio's crc32c block checksums on a real
# vosfs mount, unmount, remount, and verify every block; then fsck. Run by
# CI in both commit modes. Needs root (or fusermount3), /dev/fuse and fio.
#
#   scripts/fio-verify.sh [sync|async]
set -euo pipefail
mode=${1:-sync}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /var/tmp/vosfs-verify.XXXXXX)
bin=$work/vosfs
pool=$work/pool
mnt=$work/mnt
mkdir -p "$mnt"

cleanup() {
	if mountpoint -q "$mnt"; then umount "$mnt" || fusermount3 -u "$mnt" || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

wait_unmounted() {
	# The daemon exits after the unmount, once the pool is checkpointed
	# and marked clean.
	for _ in $(seq 1 100); do
		[ -e "$pool/vosfs.pid" ] || return 0
		sleep 0.1
	done
	echo "daemon still running after unmount" >&2
	return 1
}

go build -o "$bin" "$repo/cmd/vosfs"
"$bin" mkfs --size 2GiB --meta-size 64MiB --wal-size 16MiB "$pool"

"$bin" mount -o "commit=$mode" "$pool" "$mnt"
(cd "$mnt" && fio --output-format=terse "$repo/testdata/fio/verify.fio" >/dev/null)
umount "$mnt"
wait_unmounted

"$bin" mount -o "commit=$mode" "$pool" "$mnt"
(cd "$mnt" && fio "$repo/testdata/fio/verify-read.fio" | grep -E 'err=|READ:')
umount "$mnt"
wait_unmounted

"$bin" fsck "$pool"
echo "fio verify ($mode): every block verified, fsck clean"
