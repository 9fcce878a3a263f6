#!/usr/bin/env bash
# `layerfs mount -o volatile`: copy-ups and the container's syncs skip fsync; a clean unmount
# syncs and the container mounts again with its changes; a daemon that dies without unmounting
# (the stand-in for a host crash) leaves the container refused with one clear line and the
# store untouched, until it is removed. Usage: volatile_mount_test.sh LAYERFS_BINARY (as root).
set -euo pipefail

layerfs=$(realpath "${1:?usage: volatile_mount_test.sh LAYERFS_BINARY}")
src=$(cd "$(dirname "$0")/../.." && pwd)
[ -w /dev/fuse ] || { echo "skip: no /dev/fuse"; exit 77; }

work=$(mktemp -d /tmp/layerfs-volatile-XXXXXX)
store=$work/store
mnt=$work/mnt
cleanup() {
  "$layerfs" --root "$store" umount "$mnt" >/dev/null 2>&1 || umount -l "$mnt" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
L="$layerfs --root $store"

mkdir -p "$mnt"
bash "$src/samples/make-sample.sh" "$work/samples" >/dev/null
$L load -i "$work/samples/sample.tar" >/dev/null
$L mount --name v -o volatile sample "$mnt" >/dev/null
marker=$(find "$store/containers" -maxdepth 2 -name volatile)
[ -n "$marker" ] || fail "no volatile marker while mounted"
echo one > "$mnt/one.txt"
sync "$mnt/one.txt" || fail "fsync in a volatile container failed"
printf 'x' >> "$mnt/usr/bin/hello" || fail "copy-up in a volatile container failed"
$L umount "$mnt" >/dev/null
[ ! -e "$marker" ] || fail "a clean unmount left the volatile marker"

$L mount --name v "$mnt" >/dev/null
[ "$(cat "$mnt/one.txt")" = one ] || fail "changes of a cleanly unmounted volatile container are gone"
[ "$(tail -c1 "$mnt/usr/bin/hello")" = x ] || fail "the copied-up file lost its append"
$L umount "$mnt" >/dev/null

# The daemon dies without unmounting: nothing says the upper reached the disk.
$L mount --name v -o volatile "$mnt" >/dev/null
echo two > "$mnt/two.txt"
daemon=$(pgrep -n -f -- "--name v -o volatile $mnt")
[ -n "$daemon" ] || fail "no daemon found for the volatile mount"
kill -9 "$daemon"
for _ in $(seq 1 100); do [ -e "/proc/$daemon" ] || break; sleep 0.02; done
out=$($L mount --name v "$mnt" 2>&1) && fail "a container whose daemon died mounted again before umount"
printf '%s\n' "$out" | grep -q "run layerfs umount v first" || fail "unclear error for a dead daemon: $out"
$L umount "$mnt" >/dev/null || fail "layerfs umount does not clean up after a dead daemon"
[ -e "$marker" ] || fail "the marker did not survive the daemon's death"
before=$(cd "$store" && find . -path ./tmp -prune -o -print | sort | sha256sum)
if out=$($L mount --name v "$mnt" 2>&1); then fail "a volatile container that was not unmounted cleanly mounted again"; fi
[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "expected one error line, got: $out"
printf '%s\n' "$out" | grep -q "not unmounted cleanly" || fail "unclear error: $out"
after=$(cd "$store" && find . -path ./tmp -prune -o -print | sort | sha256sum)
[ "$before" = "$after" ] || fail "the refused mount changed the store"
mountpoint -q "$mnt" && fail "the refused mount left something mounted"
$L rm v >/dev/null || fail "the refused container cannot be removed"
$L mount --name v -o volatile sample "$mnt" >/dev/null || fail "a new container of the same name does not mount"
[ ! -e "$mnt/one.txt" ] || fail "the new container shows the removed one's changes"
$L umount "$mnt" >/dev/null
echo "volatile mount: all passed"
