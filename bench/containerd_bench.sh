#!/bin/bash
# containerd_bench: `layerfs snapshotter` side by side with containerd's own overlayfs
# snapshotter, in one private containerd (own config, root, state, sockets; runc):
#   pull    `ctr images pull --plain-http` of a generated image from a loopback docker-registry,
#           unpack included (each round starts with the image and its content removed)
#   run     `ctr run --rm IMAGE true`, start to exit
#   20      20 containers of the image at once, each reading every file of its big layer:
#           disk held by the snapshotters (du of both roots) and page cache the reads added
#           (Cached of /proc/meminfo after dropping caches; with FUSE passthrough the containers
#           share the lower files' pages as on overlayfs, without it each mount caches its own)
# Rounds alternate the two snapshotters; prints per-round times, the medians and the ratios
# layerfs / overlayfs (< 1: layerfs faster).
#
#   bench/containerd_bench.sh [LAYERFS_BINARY]     env: ROUNDS (5), LAYER_MB (32), COUNT (20)
set -euo pipefail

LAYERFS=${1:-${LAYERFS:-$(dirname "$0")/../build/tools/layerfs}}
ROUNDS=${ROUNDS:-5}
LAYER_MB=${LAYER_MB:-32}
COUNT=${COUNT:-20}
export PATH="$PATH:/sbin:/usr/sbin"
for tool in containerd ctr runc mount.fuse3 docker-registry skopeo busybox python3; do
  command -v "$tool" >/dev/null || { echo "containerd_bench: $tool not installed" >&2; exit 1; }
done
[ -x "$LAYERFS" ] || { echo "containerd_bench: no layerfs binary at $LAYERFS" >&2; exit 1; }
BIN=$(cd "$(dirname "$LAYERFS")" && pwd)
LAYERFS=$BIN/$(basename "$LAYERFS")
export PATH="$BIN:$PATH"  # mount.fuse3 runs layerfs-overlay from PATH
# shellcheck source=../tests/snapshotter/private_containerd.sh
. "$(dirname "$0")/../tests/snapshotter/private_containerd.sh"

WORK=$(mktemp -d /tmp/layerfs-ctrdbench-XXXXXX)
SOCK=$WORK/containerd.sock
REG_PID="" CTRD_PID="" SN_PID=""
c() { ctr -a "$SOCK" "$@"; }
cleanup() {
  stop_private_containerd "$SOCK"
  [ -z "$SN_PID" ] || { kill "$SN_PID" 2>/dev/null; wait "$SN_PID" 2>/dev/null || true; }
  awk -v w="$WORK/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' TERM INT  # a timeout or ^C still tears everything down

# The image: busybox and LAYER_MB of files in a second layer, pushed to a loopback registry.
mkdir -p "$WORK/base/bin" "$WORK/data/data" "$WORK/lstore"
cp "$(command -v busybox)" "$WORK/base/bin/busybox"
for a in sh true cat find xargs; do ln -s busybox "$WORK/base/bin/$a"; done
for i in $(seq "$LAYER_MB"); do head -c 1048576 /dev/urandom >"$WORK/data/data/f$i"; done
tar -C "$WORK/base" -czf "$WORK/base.tar.gz" .
"$LAYERFS" --root "$WORK/lstore" import "$WORK/base.tar.gz" bench-base:1 >/dev/null
printf 'FROM bench-base:1\nCOPY data /data\n' >"$WORK/data/Dockerfile"
"$LAYERFS" --root "$WORK/lstore" build -q -t bench:1 "$WORK/data" >/dev/null
"$LAYERFS" --root "$WORK/lstore" save bench:1 -o "$WORK/bench.tar"
start_loopback_registry "$WORK/registry"
IMAGE=127.0.0.1:$REG_PORT/bench:1
skopeo copy -q --dest-tls-verify=false "docker-archive:$WORK/bench.tar" "docker://$IMAGE"

"$LAYERFS" --root "$WORK/store" snapshotter --address "$WORK/sn.sock" 2>"$WORK/snapshotter.log" &
SN_PID=$!
start_private_containerd "$WORK" "$SOCK" "$WORK/sn.sock"

now() { echo $(($(date +%s%N) / 1000000)); }  # ms
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
declare -A T
snapshotters=(overlayfs layerfs)
for r in $(seq "$ROUNDS"); do
  # alternate which snapshotter goes first
  order=("${snapshotters[@]}")
  [ $((r % 2)) -eq 0 ] && order=(layerfs overlayfs)
  for sn in "${order[@]}"; do
    c images rm --sync "$IMAGE" >/dev/null 2>&1 || true
    t0=$(now)
    c images pull --plain-http --snapshotter "$sn" "$IMAGE" >/dev/null
    t1=$(now)
    c run --rm --snapshotter "$sn" "$IMAGE" "bench-$sn-$r" true
    t2=$(now)
    T[pull-$sn]+="$((t1 - t0)) "
    T[run-$sn]+="$((t2 - t1)) "
    printf 'round %d %-9s pull %d ms  run --rm true %d ms\n' "$r" "$sn" $((t1 - t0)) $((t2 - t1))
  done
done
for m in pull run; do
  o=$(printf '%s\n' ${T[$m-overlayfs]} | median)
  l=$(printf '%s\n' ${T[$m-layerfs]} | median)
  awk -v m="$m" -v o="$o" -v l="$l" 'BEGIN {printf "median %-4s overlayfs %d ms  layerfs %d ms  layerfs/overlayfs %.2f\n", m, o, l, l / o}'
done

# COUNT containers of each snapshotter at once, each reading every data file once: the disk
# both snapshotters hold (du of their roots) and the page cache the containers added.
cached_mib() { awk '$1 == "Cached:" {print int($2 / 1024)}' /proc/meminfo; }
for sn in overlayfs layerfs; do
  c images pull --plain-http --snapshotter "$sn" "$IMAGE" >/dev/null 2>&1 || true
  sync
  echo 3 >/proc/sys/vm/drop_caches
  cached0=$(cached_mib)
  for i in $(seq "$COUNT"); do
    c run -d --snapshotter "$sn" "$IMAGE" "many-$sn-$i" sh -c 'cat /data/* >/dev/null; echo >/done-reading; sleep 600' >/dev/null
  done
  for i in $(seq "$COUNT"); do
    n=0
    until c tasks exec --exec-id "w$i-$n" "many-$sn-$i" cat /done-reading >/dev/null 2>&1; do
      n=$((n + 1))
      [ "$n" -lt 240 ] || { echo "containerd_bench: container many-$sn-$i did not read its data" >&2; exit 1; }
      sleep 0.5
    done
  done
  printf '%d containers %-9s page cache added %d MiB (one copy of the data: %d MiB)\n' \
    "$COUNT" "$sn" $(($(cached_mib) - cached0)) "$LAYER_MB"
  case $sn in
    overlayfs) root=$WORK/root/io.containerd.snapshotter.v1.overlayfs ;;
    layerfs) root=$WORK/store/snapshots ;;
  esac
  disk=$(du -s --block-size=1M "$root" | cut -f1)
  printf '%d containers %-9s disk %d MiB\n' "$COUNT" "$sn" "$disk"
  for i in $(seq "$COUNT"); do
    c tasks kill -s KILL "many-$sn-$i" >/dev/null 2>&1 || true
  done
  sleep 1
  for i in $(seq "$COUNT"); do
    c tasks rm -f "many-$sn-$i" >/dev/null 2>&1 || true
    c containers rm "many-$sn-$i" >/dev/null 2>&1 || true
  done
done
