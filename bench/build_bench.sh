#!/bin/sh
# Build-cache benchmark: a 10-step Dockerfile (FROM, ENV, WORKDIR, 3 COPY, 2 RUN, LABEL, CMD) on
# a busybox base made here from busybox-static. After one cold build, 5 interleaved rounds of
#   cached  - rebuild with nothing changed (every step a cache hit)
#   lastcopy - rebuild after the file of the last COPY changed (that COPY and CMD rerun)
# and the medians of each. Needs root (RUN uses mount/PID namespaces and a FUSE mount).
#   bench/build_bench.sh [path/to/layerfs]      (default: build/tools/layerfs)
set -eu
LAYERFS=${1:-$(dirname "$0")/../build/tools/layerfs}
LAYERFS=$(realpath "$LAYERFS")
ROUNDS=5
WORK=$(mktemp -d /tmp/layerfs-build-bench-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export LAYERFS_ROOT="$WORK/store"

# Base image: busybox with its applets, imported as one layer.
mkdir -p "$WORK/rootfs/bin" "$WORK/rootfs/etc" "$WORK/rootfs/tmp"
cp /bin/busybox "$WORK/rootfs/bin/"
for a in sh echo cat ls mkdir cp md5sum sha256sum find wc head seq; do ln -s busybox "$WORK/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$WORK/rootfs/etc/passwd"
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
"$LAYERFS" import "$WORK/rootfs.tar" bench-base:latest >/dev/null

# Context: 8 MB of random data, a tree of 300 small files, and the small file the last COPY takes.
CTX="$WORK/ctx"
mkdir -p "$CTX/tree"
head -c 8000000 /dev/urandom > "$CTX/data.bin"
i=0
while [ $i -lt 300 ]; do echo "file $i" > "$CTX/tree/f$i.txt"; i=$((i + 1)); done
echo "round 0" > "$CTX/last.txt"
cat > "$CTX/Dockerfile" <<'DOCKERFILE'
FROM bench-base
ENV APP=/app MODE=bench
WORKDIR /app
COPY data.bin ./
RUN sha256sum data.bin > data.sum && mkdir -p gen && for i in $(seq 1 100); do echo $i > gen/$i; done
COPY tree ./tree/
RUN find /app/tree -type f | wc -l > count.txt
LABEL bench=build
COPY last.txt ./
CMD ["cat", "/app/last.txt"]
DOCKERFILE

now() { date +%s.%N; }
timed() {  # prints seconds taken by: layerfs build
  t0=$(now)
  "$LAYERFS" build -t bench:latest "$CTX" > "$WORK/out.txt" 2>&1 || { cat "$WORK/out.txt"; exit 1; }
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }'
}
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m}'; }

cold=$(timed)
: > "$WORK/cached"; : > "$WORK/lastcopy"
r=1
while [ $r -le $ROUNDS ]; do
  timed >> "$WORK/cached"
  hits=$(grep -c CACHED "$WORK/out.txt")
  [ "$hits" -eq 9 ] || { echo "cached rebuild: expected 9 cache hits, got $hits"; cat "$WORK/out.txt"; exit 1; }
  echo "round $r" > "$CTX/last.txt"
  timed >> "$WORK/lastcopy"
  hits=$(grep -c CACHED "$WORK/out.txt")
  [ "$hits" -eq 7 ] || { echo "last-COPY rebuild: expected 7 cache hits, got $hits"; cat "$WORK/out.txt"; exit 1; }
  r=$((r + 1))
done
printf 'build bench (10-step Dockerfile, %d interleaved rounds, medians)\n' "$ROUNDS"
printf '  cold build (once)                 %.3f s\n' "$cold"
printf '  fully cached rebuild              %s s   (%s)\n' "$(median < "$WORK/cached")" "$(tr '\n' ' ' < "$WORK/cached")"
printf '  rebuild after last COPY changed   %s s   (%s)\n' "$(median < "$WORK/lastcopy")" "$(tr '\n' ' ' < "$WORK/lastcopy")"
