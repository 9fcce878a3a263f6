#!/usr/bin/env bash
# layerfs without root, end to end (issue 3: "work where overlayfs cannot: without root").
#
# Runs as root only to set the stage: a private mount namespace in which /dev/fuse is mode 0666
# (what Debian's fuse3 udev rule gives users; some containers, like this CI machine, keep it
# 0600), a store and mount point owned by `nobody`. Everything layerfs does then runs as uid
# 65534:
#   1. a plain user: load, images, mount (through the setuid fusermount3), read the image as
#      root-owned files, write where the image allows (/tmp), diff, umount;
#   2. the same user as root of its own user namespace (`unshare -Ur`, as rootless podman
#      runs): copy-up, whiteout, chmod; the upper holds user.* markers (trusted.* is refused
#      there), a 0/0 whiteout and the mode on the file (the namespace maps its owner); remount
#      shows the changes; commit, and the committed image shows them too;
#   3. where docker-registry is installed: `mount --lazy` of an eStargz image from a registry on
#      127.0.0.1 (pushed by root): the image's files read right (busybox runs), the background
#      fetch records the image, umount.
# Usage: rootless_test.sh LAYERFS_BINARY. Exit 77 (skip) only when not run as root or a tool
# it needs is missing.
set -euo pipefail

layerfs=$(realpath "${1:?usage: rootless_test.sh LAYERFS_BINARY}")
src=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "skip: needs root to prepare the stage"; exit 77; }
for tool in setpriv unshare getfattr fusermount3 chattr lsattr; do
  command -v "$tool" >/dev/null || { echo "skip: $tool is not installed"; exit 77; }
done

work=$(mktemp -d /tmp/layerfs-rootless-XXXXXX)
chmod 0755 "$work"
registry_pid=
cleanup() {
  [ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null || true
  pkill -f -- "--root $work/" 2>/dev/null || true
  for m in "$work/mnt" "$work/mnt2"; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

cp "$layerfs" "$work/layerfs"  # a copy every user may execute, whatever the build dir's modes
mkdir -p "$work/home" "$work/mnt" "$work/mnt2"
bash "$src/samples/make-sample.sh" "$work/samples" >/dev/null
chmod -R a+rX "$work/samples"
chown 65534:65534 "$work/home" "$work/mnt" "$work/mnt2"

# 3. The registry (as root, on loopback) and the eStargz image in it, pushed from a root store.
lazy_ref=
if command -v docker-registry >/dev/null; then
  accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
  port=$((20000 + RANDOM % 20000))
  while accepts "$port"; do port=$((20000 + RANDOM % 20000)); done
  mkdir -p "$work/registry"
  printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n  secret: x\n' \
    "$work/registry/storage" "$port" > "$work/registry/config.yml"
  docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
  registry_pid=$!
  for _ in $(seq 50); do accepts "$port" && break; sleep 0.1; done
  lazy_ref=127.0.0.1:$port/rootless/sample:lazy
  "$layerfs" --root "$work/pusher" load -i "$work/samples/sample.tar" >/dev/null
  "$layerfs" --root "$work/pusher" tag sample "$lazy_ref"
  "$layerfs" --root "$work/pusher" push --estargz "$lazy_ref" >/dev/null
fi

# The stage: runs in a private mount namespace, so the bind over /dev/fuse and every FUSE mount
# made under it disappear with it.
cat > "$work/stage.sh" <<'STAGE'
set -euo pipefail
work=$1
mknod "$work/fuse" c 10 229
chmod 0666 "$work/fuse"
mount --bind "$work/fuse" /dev/fuse
as_nobody() {
  setpriv --reuid=65534 --regid=65534 --clear-groups \
    env -i PATH=/usr/bin:/bin HOME="$work/home" XDG_DATA_HOME="$work/home/data" "$@"
}
as_nobody bash "$work/user.sh" "$work"
as_nobody unshare -Ur -m bash "$work/userns.sh" "$work"
[ -z "$2" ] || as_nobody bash "$work/lazy.sh" "$work" "$2"
STAGE

# 1. A plain user: the default store root is $XDG_DATA_HOME/layerfs.
cat > "$work/user.sh" <<'USER'
set -euo pipefail
work=$1
L=$work/layerfs
fail() { echo "FAIL (user): $*"; exit 1; }
$L load -i "$work/samples/sample.tar" >/dev/null
[ -d "$work/home/data/layerfs/blobs" ] || fail "store not under \$XDG_DATA_HOME/layerfs"
$L images | grep -q '^sample ' || fail "images does not list sample"
$L mount --name plain sample "$work/mnt" >/dev/null
grep -q " $work/mnt fuse.layerfs " /proc/mounts || fail "no fuse.layerfs mount"
[ "$(stat -c %u:%g "$work/mnt/etc/passwd")" = 0:0 ] || fail "image files must show their owners (0:0)"
"$work/mnt/usr/bin/hello" | grep -q 'hello from' || fail "cannot run a binary of the image"
echo note > "$work/mnt/tmp/note"
[ "$(stat -c %u "$work/mnt/tmp/note")" = 65534 ] || fail "a new file belongs to its creator"
if rm "$work/mnt/etc/passwd" 2>/dev/null; then fail "a user removed a root-owned file"; fi
[ "$($L diff plain)" = "$(printf 'C /tmp\nA /tmp/note')" ] || fail "diff: $($L diff plain)"
$L umount "$work/mnt"
if grep -q " $work/mnt " /proc/mounts; then fail "still mounted after umount"; fi
# Mount flags, O_DIRECT and chattr without root (issue 19): what fusermount3 can pass works,
# what it cannot is refused by name.
$L mount --name flags -o nosuid,noatime,relatime sample "$work/mnt" >/dev/null
grep " $work/mnt fuse.layerfs " /proc/mounts | grep -q noatime || fail "noatime missing from the mount"
dd if=/dev/zero of="$work/mnt/tmp/direct" bs=4k count=4 oflag=direct 2>/dev/null || fail "O_DIRECT write"
dd if="$work/mnt/tmp/direct" of=/dev/null bs=512 iflag=direct 2>/dev/null || fail "O_DIRECT read"
dd if="$work/mnt/etc/passwd" of=/dev/null bs=4k iflag=direct 2>/dev/null || fail "O_DIRECT read of an image file"
chattr +d "$work/mnt/tmp/direct" || fail "chattr +d by the owner"
lsattr "$work/mnt/tmp/direct" | awk '{print $1}' | grep -q d || fail "nodump flag not shown"
$L umount "$work/mnt"
if $L mount --name strict -o strictatime sample "$work/mnt" 2>"$work/home/err" >/dev/null; then fail "strictatime accepted rootless"; fi
grep -q "strictatime needs root" "$work/home/err" || fail "strictatime refused without naming it: $(cat "$work/home/err")"
echo "ok: plain user"
USER

# 2. Root of its own user namespace (only uid/gid 0 mapped, to 65534 outside).
cat > "$work/userns.sh" <<'USERNS'
set -euo pipefail
work=$1
L="$work/layerfs --root $work/home/data/layerfs"
fail() { echo "FAIL (userns): $*"; exit 1; }
m=$work/mnt
$L mount --name ns sample "$m" >/dev/null
echo hi > "$m/new.txt"
rm "$m/etc/passwd"
mkdir "$m/d"
chmod 600 "$m/etc/group"
check_view() {
  [ "$(cat "$1/new.txt")" = hi ] || fail "$2: new.txt"
  [ ! -e "$1/etc/passwd" ] || fail "$2: etc/passwd still there"
  [ -d "$1/d" ] || fail "$2: d missing"
  [ "$(stat -c %a "$1/etc/group")" = 600 ] || fail "$2: etc/group mode $(stat -c %a "$1/etc/group")"
  [ "$(cat "$1/etc/motd")" = "$(cat "$work/home/ref-motd")" ] || fail "$2: etc/motd content"
}
cat "$m/etc/motd" > "$work/home/ref-motd"
check_view "$m" "live"
$L umount "$m"
upper=$(echo "$work"/home/data/layerfs/containers/*/upper/etc)
upper=$(for u in $upper; do [ -c "$u/passwd" ] && echo "$u"; done)
[ -n "$upper" ] || fail "no 0/0 whiteout for etc/passwd in the upper"
# Root of the namespace maps the owner (0), so the mode is on the file itself, as fuse-overlayfs
# does it there; no override xattr (that is for ids the namespace cannot hold).
[ "$(stat -c %a "$upper/group")" = 600 ] || fail "the upper's etc/group has mode $(stat -c %a "$upper/group"), not 600"
if getfattr -d -m - "$upper/group" 2>/dev/null | grep -q override_stat; then
  fail "an override xattr for an owner the namespace maps: $(getfattr -d -m - "$upper/group" 2>&1)"
fi
if getfattr -d -m trusted. -R "$upper" 2>/dev/null | grep -q trusted.; then fail "trusted.* xattrs in a rootless upper"; fi
$L mount --name ns sample "$m" >/dev/null
check_view "$m" "remount"
$L umount "$m"
$L commit ns committed:1 >/dev/null
$L mount --name fresh committed:1 "$work/mnt2" >/dev/null
check_view "$work/mnt2" "committed image"
$L umount "$work/mnt2"
echo "ok: user namespace"
USERNS

# 3. mount --lazy as a plain user, with a store of its own.
cat > "$work/lazy.sh" <<'LAZY'
set -euo pipefail
work=$1
ref=$2
L="$work/layerfs --root $work/home/lazy-store"
fail() { echo "FAIL (lazy): $*"; exit 1; }
$L mount --lazy "$ref" "$work/mnt" >/dev/null || fail "mount --lazy"
"$work/mnt/usr/bin/hello" | grep -q 'hello from' || fail "cannot run a binary of the lazily mounted image"
[ "$(stat -c %u:%g "$work/mnt/etc/passwd")" = 0:0 ] || fail "image files must show their owners (0:0)"
for _ in $(seq 300); do $L images | grep -q rootless/sample && break; sleep 0.1; done
$L images | grep -q rootless/sample || fail "the background fetch did not record the image"
$L umount "$work/mnt"
echo "ok: lazy mount"
LAZY

chmod a+r "$work"/*.sh
unshare -m --propagation private bash "$work/stage.sh" "$work" "$lazy_ref"
echo "rootless: all passed"
