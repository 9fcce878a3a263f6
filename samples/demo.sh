#!/usr/bin/env bash
# The main job on the bundled sample: load two images that share a layer, mount one as a
# container root filesystem, look inside and run a command in it, show what the store holds,
# then unmount and clean up. Usage: samples/demo.sh [path/to/layerfs]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
layerfs=${1:-$here/../build/tools/layerfs}
[ -x "$layerfs" ] || { echo "demo.sh: build layerfs first (cmake --preset default && cmake --build --preset default --target layerfs)" >&2; exit 1; }
work=$(mktemp -d /tmp/layerfs-demo.XXXXXX)
export LAYERFS_ROOT=$work/store
mnt=$work/rootfs
cleanup() {
  mountpoint -q "$mnt" 2>/dev/null && "$layerfs" umount "$mnt" || true
  rm -rf "$work"
}
trap cleanup EXIT
run() { printf '\n$ %s\n' "$*"; "$@"; }

"$here/make-sample.sh" "$work" >/dev/null
run "$layerfs" load -i "$work/sample.tar"
run "$layerfs" load -i "$work/sample-alt.tar"
mkdir "$mnt"
run "$layerfs" mount --name demo sample "$mnt"
run ls -l "$mnt" "$mnt/etc"
run chroot "$mnt" /usr/bin/hello
run chroot "$mnt" /bin/sh -c 'echo written-in-container > /root/note; rm /etc/motd; ls /root /etc'
run "$layerfs" diff demo
run "$layerfs" ps
run "$layerfs" images
run "$layerfs" history sample
run "$layerfs" system df -v
run "$layerfs" umount "$mnt"
run "$layerfs" ps -a
