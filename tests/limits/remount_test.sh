#!/usr/bin/env bash
# `mount -o remount,ro` / `remount,rw` on a layerfs mount, through mount(8) as a user types it
# (issue 19). mount(8) runs the helper /sbin/mount.fuse.layerfs for a fuse.layerfs mount; the
# test installs it in a private mount namespace (a tmpfs over /usr/sbin, which /sbin points to
# on Debian) so the host is untouched, and checks that writes fail with EROFS between the two
# remounts, as on overlayfs, and that the mount's other flags survive.
# Usage: remount_test.sh LAYERFS_BINARY. Exit 77 (skip) when not root.
set -euo pipefail
layerfs=$(realpath "${1:?usage: remount_test.sh LAYERFS_BINARY}")
[ "$(id -u)" = 0 ] || { echo "skip: needs root"; exit 77; }
work=$(mktemp -d /tmp/layerfs-remount-XXXXXX)
trap 'umount -l "$work/mnt" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/lower" "$work/upper" "$work/work" "$work/mnt" "$work/other"
echo lower > "$work/lower/f"

cat > "$work/inside.sh" <<'INSIDE'
set -euo pipefail
layerfs=$1 work=$2 m=$2/mnt
fail() { echo "FAIL: $*"; exit 1; }
trap 'umount -l "$m" 2>/dev/null || true' EXIT  # the daemon would keep this namespace alive
sbin=$(realpath /sbin)
mount -t tmpfs tmpfs "$sbin"
ln -s "$layerfs" "$sbin/mount.fuse.layerfs"
"$layerfs" overlay -o "lowerdir=$work/lower,upperdir=$work/upper,workdir=$work/work,nosuid,noatime" "$m"
echo one > "$m/one"
mount -o remount,ro "$m" || fail "mount -o remount,ro"
grep " $m fuse.layerfs ro," /proc/mounts >/dev/null || fail "not read-only: $(grep " $m " /proc/mounts)"
if (echo two > "$m/two") 2>"$work/err"; then fail "created a file on a read-only remount"; fi
grep -q "Read-only file system" "$work/err" || fail "not EROFS: $(cat "$work/err")"
if (echo more >> "$m/f") 2>/dev/null; then fail "copied up on a read-only remount"; fi
[ "$(cat "$m/one")" = one ] || fail "reads on a read-only remount"
mount -o remount,rw "$m" || fail "mount -o remount,rw"
grep " $m fuse.layerfs rw," /proc/mounts | grep nosuid | grep -q noatime || fail "flags lost: $(grep " $m " /proc/mounts)"
echo two > "$m/two" || fail "cannot write after remount,rw"
echo more >> "$m/f" || fail "cannot copy up after remount,rw"
if mount -t fuse.layerfs layerfs "$work/other" 2>/dev/null; then fail "the helper made a new mount"; fi
umount "$m"
[ "$(cat "$work/upper/two")" = two ] || fail "upper lacks the write"
echo "remount: all passed"
INSIDE
unshare -m --propagation private bash "$work/inside.sh" "$layerfs" "$work"
