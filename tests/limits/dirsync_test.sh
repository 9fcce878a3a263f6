#!/usr/bin/env bash
# `dirsync` and `sync` on a layerfs mount (issue 19): as on a dirsync ext4, every change to a
# directory (create, mkdir, rename, unlink, rmdir) is on disk before the call returns. The FUSE
# kernel leaves that to the daemon, so the test watches the daemon's fsync calls with strace:
# one per change with dirsync or sync, none without (the same operations on new entries need no
# copy-up, which would fsync a file).
# Usage: dirsync_test.sh LAYERFS_BINARY. Exit 77 (skip) when not root or strace is missing.
set -euo pipefail
layerfs=$(realpath "${1:?usage: dirsync_test.sh LAYERFS_BINARY}")
[ "$(id -u)" = 0 ] || { echo "skip: needs root"; exit 77; }
command -v strace >/dev/null || { echo "skip: strace is not installed"; exit 77; }
work=$(mktemp -d /tmp/layerfs-dirsync-XXXXXX)
daemon=""
cleanup() {
  umount -l "$work/mnt" 2>/dev/null || true
  [ -z "$daemon" ] || wait "$daemon" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

# The daemon's fsync calls while the same five directory changes run, with mount options $1.
count_fsyncs() {
  rm -rf "$work/lower" "$work/upper" "$work/work" "$work/mnt"
  mkdir -p "$work/lower" "$work/upper" "$work/work" "$work/mnt"
  "$layerfs" overlay -f -o "lowerdir=$work/lower,upperdir=$work/upper,workdir=$work/work$1" "$work/mnt" &
  daemon=$!
  for _ in $(seq 100); do grep -q " $work/mnt fuse" /proc/mounts && break; sleep 0.05; done
  stat "$work/mnt" >/dev/null
  strace -f -qq -e trace=fsync -o "$work/trace" -p "$daemon" &
  local tracer=$!
  sleep 0.5  # strace attaches to every thread
  touch "$work/mnt/a"; mkdir "$work/mnt/d"; mv "$work/mnt/a" "$work/mnt/d/b"; rm "$work/mnt/d/b"; rmdir "$work/mnt/d"
  sleep 0.2
  kill "$tracer"; wait "$tracer" 2>/dev/null || true
  umount "$work/mnt"
  wait "$daemon" || true
  daemon=""
  grep -c "fsync(" "$work/trace" || true
}

plain=$(count_fsyncs "")
dirsync=$(count_fsyncs ",dirsync")
sync=$(count_fsyncs ",sync")
echo "daemon fsync calls for 5 directory changes: default $plain, dirsync $dirsync, sync $sync"
[ "$plain" -eq 0 ] || fail "fsync without dirsync"
[ "$dirsync" -ge 6 ] || fail "dirsync: $dirsync fsyncs for 5 changes (a rename across directories syncs both)"
[ "$sync" -ge 6 ] || fail "sync: $sync fsyncs (sync implies dirsync)"
echo "dirsync: all passed"
