#!/usr/bin/env bash
# Builds two small real images from Debian's busybox-static as docker-archive files:
#   sample:latest      base layer (busybox + /etc) + app layer (adds /usr/bin/hello, deletes
#                      /etc/obsolete.conf through an OCI whiteout)
#   sample-alt:latest  the same base layer + a different app layer
# so that loading both shows one shared layer. Usage: make-sample.sh OUTDIR
set -euo pipefail
out=${1:?usage: make-sample.sh OUTDIR}
busybox=$(command -v busybox || true)
[ -n "$busybox" ] && file -L "$busybox" 2>/dev/null | grep -q static || busybox=/bin/busybox
[ -x "$busybox" ] || { echo "make-sample.sh: busybox-static is not installed" >&2; exit 1; }
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
epoch=1700000000

make_tar() {  # make_tar DIR TARFILE: deterministic tar of DIR's contents, root-owned
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@$epoch --format=posix \
      --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C "$1" -cf "$2" .
}

# Base layer: busybox with its applet links, a minimal /etc.
base=$work/base
mkdir -p "$base"/{bin,etc,tmp,root,usr/bin}
cp "$busybox" "$base/bin/busybox"
for applet in sh ls cat echo ps mkdir rm cp mv ln id stat find grep sed wc head tail uname env test true false sleep touch chmod df du; do
  ln -s busybox "$base/bin/$applet"
done
chmod 1777 "$base/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$base/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$base/etc/group"
echo "Welcome to the layerfs sample image." > "$base/etc/motd"
echo "this file is deleted by the app layer" > "$base/etc/obsolete.conf"

# App layers: one file each, plus a whiteout in the first.
app=$work/app
mkdir -p "$app/usr/bin" "$app/etc"
printf '#!/bin/sh\necho "hello from layer 2 of $(cat /etc/motd | head -c 23)..."\n' > "$app/usr/bin/hello"
chmod 755 "$app/usr/bin/hello"
: > "$app/etc/.wh.obsolete.conf"
alt=$work/alt
mkdir -p "$alt/usr/bin"
printf '#!/bin/sh\necho "hello from the alternative app layer"\n' > "$alt/usr/bin/hello"
chmod 755 "$alt/usr/bin/hello"

for l in base app alt; do
  make_tar "$work/$l" "$work/$l.tar"
  gzip -n -9 -c "$work/$l.tar" > "$work/$l.tar.gz"
done
sha() { sha256sum "$1" | cut -d' ' -f1; }

archive() {  # archive NAME TOPLAYER OUTFILE: docker-archive with base + TOPLAYER
  local name=$1 top=$2 dir=$work/archive-$1
  mkdir -p "$dir"
  cp "$work/base.tar.gz" "$dir/$(sha "$work/base.tar.gz").tar.gz"
  cp "$work/$top.tar.gz" "$dir/$(sha "$work/$top.tar.gz").tar.gz"
  cat > "$dir/config.json" <<JSON
{"architecture":"amd64","os":"linux","created":"2023-11-14T22:13:20Z","config":{"Env":["PATH=/usr/bin:/bin"],"Cmd":["/bin/sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:$(sha "$work/base.tar")","sha256:$(sha "$work/$top.tar")"]},"history":[{"created":"2023-11-14T22:13:20Z","created_by":"/bin/sh -c #(nop) ADD busybox /bin/busybox"},{"created":"2023-11-14T22:13:20Z","created_by":"/bin/sh -c #(nop)  ENV PATH=/usr/bin:/bin","empty_layer":true},{"created":"2023-11-14T22:13:20Z","created_by":"COPY $top /usr/bin/hello # buildkit"},{"created":"2023-11-14T22:13:20Z","created_by":"/bin/sh -c #(nop)  CMD [\"/bin/sh\"]","empty_layer":true}]}
JSON
  local cfg
  cfg=$(sha "$dir/config.json")
  mv "$dir/config.json" "$dir/$cfg.json"
  printf '[{"Config":"%s.json","RepoTags":["%s:latest"],"Layers":["%s.tar.gz","%s.tar.gz"]}]\n' \
    "$cfg" "$name" "$(sha "$work/base.tar.gz")" "$(sha "$work/$top.tar.gz")" > "$dir/manifest.json"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@$epoch -C "$dir" -cf "$3" .
}

archive sample app "$out/sample.tar"
archive sample-alt alt "$out/sample-alt.tar"
echo "$out/sample.tar $out/sample-alt.tar"
