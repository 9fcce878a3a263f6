#!/usr/bin/env bash
# Unpack speed: UnpackLayer vs `tar -xzf` on the same >=100 MB gzip layer, and
# LayerStore::Ensure of two equal-size different layers in parallel vs one after the other.
#
#   bench/unpack_bench.sh [ROUNDS]      (default 5; env BUILD_DIR, WORK_DIR override paths)
#
# The layers are generated deterministically (fixed seeds, sorted tar, fixed mtimes) into
# WORK_DIR and reused by later runs. Rounds interleave the contenders so that machine noise
# hits all of them alike; medians of wall and CPU time are reported (CPU time is the steadier
# figure on a shared machine). The page cache is NOT dropped: every contender
# reads a blob that is already cached and writes into the page cache (a `sync` before each
# timed run keeps earlier writeback out of the measurement).
set -euo pipefail

ROUNDS=${1:-5}
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$SRC/build-unpack-bench}
WORK_DIR=${WORK_DIR:-/tmp/layerfs-unpack-bench}
DRIVER=$BUILD_DIR/bench/unpack_driver

if [[ ! -x $DRIVER ]]; then
  cmake -S "$SRC" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLAYERFS_BUILD_TESTS=OFF >/dev/null
  ninja -C "$BUILD_DIR" -j2 unpack_driver >/dev/null
fi
mkdir -p "$WORK_DIR"

# A tree of ~230 MB: many small files, some medium, a few large; half random bytes
# (incompressible), half text (compressible), so the gzip blob is well over 100 MB.
generate_tree() {  # seed dir
  python3 - "$1" "$2" <<'PY'
import os, random, sys
seed, root = int(sys.argv[1]), sys.argv[2]
rng = random.Random(seed)
words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(3000)]
def content(n):
    if rng.random() < 0.5:
        return rng.randbytes(n)
    out = bytearray()
    while len(out) < n:
        out += b" ".join(rng.choice(words) for _ in range(12)) + b"\n"
    return bytes(out[:n])
plan = [(6000, 512, 16 << 10), (300, 64 << 10, 1 << 20), (12, 4 << 20, 12 << 20)]
for count, lo, hi in plan:
    for i in range(count):
        d = os.path.join(root, f"d{rng.randrange(60):02d}", f"s{rng.randrange(8)}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{lo}-{i}"), "wb") as f:
            f.write(content(rng.randint(lo, hi)))
PY
}

make_layer() {  # name seed
  local blob=$WORK_DIR/$1.tar.gz
  [[ -s $blob && -s $WORK_DIR/$1.diffid ]] && return
  rm -rf "$WORK_DIR/$1.src" && mkdir -p "$WORK_DIR/$1.src"
  generate_tree "$2" "$WORK_DIR/$1.src"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1700000000 -C "$WORK_DIR/$1.src" -cf - . |
    gzip -n -6 >"$blob.part"
  mv "$blob.part" "$blob"
  rm -rf "$WORK_DIR/$1.src"
  echo "sha256:$(gzip -dc "$blob" | sha256sum | cut -d' ' -f1)" >"$WORK_DIR/$1.diffid"
  echo "sha256:$(sha256sum "$blob" | cut -d' ' -f1)" >"$WORK_DIR/$1.digest"
}

echo "generating layers in $WORK_DIR (reused when present)..." >&2
make_layer layerA 1
make_layer layerB 2
A=$WORK_DIR/layerA.tar.gz
B=$WORK_DIR/layerB.tar.gz
echo "layer A: $(du -m "$A" | cut -f1) MB gzip, $(gzip -dc "$A" | wc -c | awk '{printf "%d", $1/1048576}') MB tar;" \
     "layer B: $(du -m "$B" | cut -f1) MB gzip" >&2

OUT=$WORK_DIR/out
now() { date +%s.%N; }
fresh() { rm -rf "$OUT" && mkdir -p "$OUT/tree" && sync; }
layer_args() { echo "$1 $(cat "${1%.tar.gz}.digest") $(cat "${1%.tar.gz}.diffid")"; }

# timed LABEL CMD...: runs CMD under /usr/bin/time; appends wall and CPU (user+sys) seconds.
declare -A WALL CPU
timed() {
  local label=$1; shift
  /usr/bin/time -f "%e %U %S" -o "$WORK_DIR/time.txt" "$@" >/dev/null
  read -r wall user sys <"$WORK_DIR/time.txt"
  WALL[$label]+="$wall "
  CPU[$label]+="$(echo "$user + $sys" | bc) "
}
for ((r = 1; r <= ROUNDS; r++)); do
  fresh; timed tar tar -xzf "$A" -C "$OUT/tree"
  fresh; timed unpack "$DRIVER" unpack "$A" "$OUT/tree"
  fresh; timed seq "$DRIVER" ensure "$OUT/store" seq $(layer_args "$A") $(layer_args "$B")
  [[ -d $OUT/store/layers/$(cut -d: -f2 <"$WORK_DIR/layerA.diffid") ]] || { echo "layer A missing" >&2; exit 1; }
  fresh; timed par "$DRIVER" ensure "$OUT/store" par $(layer_args "$A") $(layer_args "$B")
  echo "round $r wall: tar $(echo ${WALL[tar]} | awk '{print $NF}')s unpack $(echo ${WALL[unpack]} | awk '{print $NF}')s" \
       "ensure-seq $(echo ${WALL[seq]} | awk '{print $NF}')s ensure-par $(echo ${WALL[par]} | awk '{print $NF}')s" >&2
done
rm -rf "$OUT"

median() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { echo "$1 / $2" | bc -l; }
w_tar=$(median "${WALL[tar]}"); w_unpack=$(median "${WALL[unpack]}")
w_seq=$(median "${WALL[seq]}"); w_par=$(median "${WALL[par]}")
c_tar=$(median "${CPU[tar]}"); c_unpack=$(median "${CPU[unpack]}")
c_seq=$(median "${CPU[seq]}"); c_par=$(median "${CPU[par]}")
echo "medians over $ROUNDS rounds, $(nproc) cores, load average $(cut -d' ' -f1 /proc/loadavg), page cache not dropped:"
printf '                       wall s   cpu s    cores busy (cpu/wall; user+sys of all threads and children)\n'
printf '  tar -xzf            %7.2f  %7.2f  %5.2f\n' "$w_tar" "$c_tar" "$(ratio "$c_tar" "$w_tar")"
printf '  UnpackLayer         %7.2f  %7.2f  %5.2f   unpack/tar wall %.2f (target <= 1.30), cpu %.2f\n' \
  "$w_unpack" "$c_unpack" "$(ratio "$c_unpack" "$w_unpack")" "$(ratio "$w_unpack" "$w_tar")" "$(ratio "$c_unpack" "$c_tar")"
printf '  Ensure 2 layers seq %7.2f  %7.2f  %5.2f\n' "$w_seq" "$c_seq" "$(ratio "$c_seq" "$w_seq")"
printf '  Ensure 2 layers par %7.2f  %7.2f  %5.2f   seq/par wall %.2f (target ~2), cpu %.2f\n' \
  "$w_par" "$c_par" "$(ratio "$c_par" "$w_par")" "$(ratio "$w_seq" "$w_par")" "$(ratio "$c_seq" "$c_par")"
# One UnpackLayer is already a two-thread pipeline (decompress | hash+parse+write) that keeps two
# cores busy, so on a 2-core machine two layers side by side cannot finish sooner than one after
# the other: seq/par approaches the number of cores divided by the cores one unpack keeps busy.
