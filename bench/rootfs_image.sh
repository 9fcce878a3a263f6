# shellcheck shell=bash
# Sourced by the bench scripts that run a command in a real Debian image (lazy_bench.sh,
# start_bench.sh): one way to build that image, so both measure the same bytes.

# rootfs_image DIR NAME PACKAGE: DIR/NAME.tar.gz, a Debian bookworm minbase rootfs with PACKAGE
# as a gzip tar (`layerfs import` keeps the file it is given as the layer blob, and a registry
# image's layers are gzip); built once with mmdebstrap from deb.debian.org, kept afterwards.
rootfs_image() {
  local dir=$1 name=$2 package=$3
  local tgz=$dir/$name.tar.gz
  [ -f "$tgz" ] && return 0
  echo "building $tgz (mmdebstrap, from deb.debian.org)"
  mkdir -p "$dir"
  SOURCE_DATE_EPOCH=1700000000 mmdebstrap --quiet --variant=minbase --include="$package" bookworm "$dir/$name.tmp.tar"
  gzip -n -6 <"$dir/$name.tmp.tar" >"$dir/$name.tmp.tar.gz"
  rm "$dir/$name.tmp.tar"
  mv "$dir/$name.tmp.tar.gz" "$tgz"
}
