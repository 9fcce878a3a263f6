#!/usr/bin/env bash
# A full disk under a live container (issue 3; quality bar "full disk"): the store, and with it
# the container's upper, sits on a small tmpfs. Writes that do not fit fail with ENOSPC in the
# container (one clear error for the writing program), the mount keeps serving, nothing the
# container had is lost, freeing space makes writes work again, and a copy-up that cannot fit
# leaves the lower file as it was. Usage: full_upper_test.sh LAYERFS_BINARY (as root).
set -euo pipefail

layerfs=$(realpath "${1:?usage: full_upper_test.sh LAYERFS_BINARY}")
src=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "skip: needs root (tmpfs mount)"; exit 77; }

work=$(mktemp -d /tmp/layerfs-full-XXXXXX)
store=$work/store
mnt=$work/mnt
cleanup() {
  "$layerfs" --root "$store" umount "$mnt" >/dev/null 2>&1 || umount -l "$mnt" 2>/dev/null || true
  umount -l "$store" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

mkdir -p "$store" "$mnt"
mount -t tmpfs -o size=12m tmpfs "$store"
bash "$src/samples/make-sample.sh" "$work/samples" >/dev/null
L="$layerfs --root $store"
$L load -i "$work/samples/sample.tar" >/dev/null
$L mount --name full sample "$mnt" >/dev/null

echo kept > "$mnt/kept.txt"
hello_before=$(sha256sum < "$mnt/usr/bin/hello")
if dd if=/dev/zero of="$mnt/big" bs=1M count=64 status=none 2>"$work/dd.err"; then
  fail "a 64 MiB write into a 12 MiB store succeeded"
fi
grep -q "No space left on device" "$work/dd.err" || fail "the writer did not see ENOSPC: $(cat "$work/dd.err")"
[ "$(cat "$mnt/kept.txt")" = kept ] || fail "a file written before the disk filled is gone"
ls "$mnt/etc" >/dev/null || fail "the mount stopped serving"

# A copy-up that cannot fit: the lower file stays as it was, whole.
if dd if=/dev/zero of="$mnt/usr/bin/hello" bs=1 count=1 conv=notrunc status=none 2>/dev/null; then
  [ "$(head -c1 "$mnt/usr/bin/hello" | od -An -tx1 | tr -d ' ')" = 00 ] || fail "copy-up succeeded but lost the write"
else
  [ "$(sha256sum < "$mnt/usr/bin/hello")" = "$hello_before" ] || fail "a failed copy-up changed the file"
fi

rm "$mnt/big"
# The kernel tells the daemon that the last open and the last reference of big are gone
# (RELEASE, FORGET) asynchronously, a few milliseconds after rm returns; only then can the
# upper's filesystem free the blocks. Wait for that (bounded), then write.
for _ in $(seq 1 100); do
  [ "$(stat -f -c %a "$store")" -gt 1024 ] && break
  sleep 0.02
done
[ "$(stat -f -c %a "$store")" -gt 1024 ] || fail "removing the big file did not free its space within 2 s"
echo again > "$mnt/again.txt" || fail "writes do not work again once space is freed"
[ "$(cat "$mnt/again.txt")" = again ] || fail "after freeing space: wrong content"
$L umount "$mnt" >/dev/null
$L mount --name full sample "$mnt" >/dev/null
[ "$(cat "$mnt/kept.txt")" = kept ] && [ "$(cat "$mnt/again.txt")" = again ] || fail "the changes did not survive a remount"
[ ! -e "$mnt/big" ] || fail "the removed file came back"
$L umount "$mnt" >/dev/null
echo "full upper: all passed"
