#!/bin/bash
# start_bench: the "real start" rows of issue 14 in a real Debian python image, side by side on
# kernel overlayfs, fuse-overlayfs, layerfs-overlay (both builds) and layerfs: a warm python
# import, a whole `podman run --rm`, and a dpkg unpack of two real packages. Root. Every mount
# and container it makes is removed when it ends, also on failure or Ctrl-C; the image, the
# unpacked rootfs, the .deb files, the layerfs store and the podman stores stay cached under WORK.
#
#   bench/start_bench.sh [LAYERFS_BINARY [FUSE318_LAYERFS_BINARY]]
#   env: ROUNDS (5), ROWS (python,podman,unpack), WORK (/var/tmp/layerfs-startbench),
#        IMAGES (/var/tmp/layerfs-lazybench/images, shared with lazy_bench.sh),
#        CSV (bench/runs/<date>-start.csv)
# bench/README.md describes the rows.
set -euo pipefail
shopt -s inherit_errexit
export LC_ALL=C # EPOCHREALTIME and awk with a decimal point

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/rootfs_image.sh
source "$HERE/rootfs_image.sh"
LAYERFS=$(realpath -m "${1:-${LAYERFS:-$HERE/../build/tools/layerfs}}")
LAYERFS_URING=$(realpath -m "${2:-${LAYERFS_URING:-$HERE/../build-fuse318/tools/layerfs}}")
ROUNDS=${ROUNDS:-5}
ROWS=${ROWS:-python,podman,unpack}
WORK=${WORK:-/var/tmp/layerfs-startbench}
IMAGES=${IMAGES:-/var/tmp/layerfs-lazybench/images}
CSV=${CSV:-$HERE/runs/$(date -u +%F)-start.csv}

die() { echo "start_bench: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (overlay mounts, chroot, podman's root store)"
for tool in fuse-overlayfs podman runc python3 chroot apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || die "$tool not installed (apt-get install fuse-overlayfs podman runc python3 apt dpkg)"
done
[ -x "$LAYERFS" ] || die "no layerfs binary at $LAYERFS"
[ -x "$(dirname "$LAYERFS")/layerfs-overlay" ] || die "no layerfs-overlay next to $LAYERFS"
IFS=, read -r -a rows <<<"$ROWS"
for row in "${rows[@]}"; do
  [[ $row =~ ^(python|podman|unpack)$ ]] || die "unknown row $row (python, podman, unpack)"
done

# The columns. layerfs-overlay-uring is the libfuse 3.18 build's layerfs-overlay (passthrough,
# and FUSE over io_uring where the kernel offers it).
NOTES=()
COLS=(kernel fuse-overlayfs layerfs-overlay)
if [ ! -x "$(dirname "$LAYERFS_URING")/layerfs-overlay" ]; then
  NOTES+=("no layerfs-overlay-uring column: no libfuse 3.18 build at $(dirname "$LAYERFS_URING") (cmake --preset fuse318)")
elif [ "$(cat /sys/module/fuse/parameters/enable_uring 2>/dev/null)" != Y ]; then
  NOTES+=("no layerfs-overlay-uring column: the kernel does not offer FUSE over io_uring (echo Y > /sys/module/fuse/parameters/enable_uring)")
else
  COLS+=(layerfs-overlay-uring)
fi
COLS+=(layerfs)
# Each layerfs column again with `-o no_open` (files open and close without a FUSE request; for
# podman the store's overlay.mountopt, which containers/storage hands the mount program).
for col in "${COLS[@]}"; do [[ $col == layerfs* ]] && COLS+=("$col-noopen"); done
PODMAN_COLS=() # podman mounts through a mount_program, not a layerfs store
for col in "${COLS[@]}"; do [[ $col == layerfs || $col == layerfs-noopen ]] || PODMAN_COLS+=("$col"); done

STORE=$WORK/store # layerfs's store (the image imported once)
ROOTFS=$WORK/rootfs # the image unpacked: the lower dir of the overlay columns
RUN=$WORK/run     # this run's mounts, upper and work dirs
# podman refuses a runroot path longer than 50 characters; it is run-time state, tmpfs as podman's own.
RUNROOTS=/run/lfsb
KEEP=$WORK/last-run # the output of each row and column's last run (a failure's too)
IMAGE=startbench/python:1
TGZ=$IMAGES/python.tar.gz
LAYERFS_NAMES=() # layerfs containers this run made, removed at the end

base_col() { echo "${1%-noopen}"; } # COLUMN: the column without its -noopen
overlay_bin() { # COLUMN: the mount program of an overlay column
  case $(base_col "$1") in
  fuse-overlayfs) command -v fuse-overlayfs ;;
  layerfs-overlay) echo "$(dirname "$LAYERFS")/layerfs-overlay" ;;
  layerfs-overlay-uring) echo "$(dirname "$LAYERFS_URING")/layerfs-overlay" ;;
  esac
}
stats_bin() { # COLUMN: the layerfs whose `stats` reads the column's mounts (none: no counts)
  case $(base_col "$1") in
  layerfs | layerfs-overlay) echo "$LAYERFS" ;;
  layerfs-overlay-uring) echo "$LAYERFS_URING" ;;
  esac
}
# layerfs-overlay keeps the merged index of its lowers here between mounts, as podman's daemons do.
index_cache() { echo "$WORK/index-cache/$1"; }

mounts_under() { awk -v w="$1/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r; }
unmount_all_under() {
  local m
  mounts_under "$1" | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
}

cleanup() {
  set +e
  local col name
  for col in "${PODMAN_COLS[@]}"; do
    [ -d "$WORK/podman/$col" ] && pm "$col" rm -af -t 0 >/dev/null 2>&1
  done
  for name in "${LAYERFS_NAMES[@]}"; do
    "$LAYERFS" --root "$STORE" umount "$name" >/dev/null 2>&1
    "$LAYERFS" --root "$STORE" rm -f "$name" >/dev/null 2>&1
  done
  unmount_all_under "$WORK"
  rm -rf "$RUN" "$RUNROOTS"
  local left
  left=$(grep -E 'fuse|overlay' /proc/mounts | grep -F " $WORK/") && echo "start_bench: mounts left: $left" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# In the image: a clean environment (dpkg wants the sbin directories in PATH).
IN_ROOT=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 chroot)
PY_CMD=(python3 -c "import asyncio, json, email.mime.text, http.client, sqlite3, xml.dom.minidom; print('ok')")
PODMAN_PY="import asyncio, json, email.mime.text, http.client, sqlite3, xml.dom.minidom, unittest, argparse, logging.handlers, decimal, csv, multiprocessing; print('ok')"
DEBS=(perl-modules-5.36 libpython3.11-stdlib)

# --- the image, its unpacked tree, the layerfs store, the .deb files (all untimed, cached) -----
prepare_image() {
  rootfs_image "$IMAGES" python python3
  if [ ! -f "$ROOTFS.done" ]; then
    rm -rf "$ROOTFS"
    mkdir -p "$ROOTFS"
    tar -xzf "$TGZ" -C "$ROOTFS" --numeric-owner --xattrs --xattrs-include='*'
    touch "$ROOTFS.done"
  fi
  if ! "$LAYERFS" --root "$STORE" inspect "$IMAGE" >/dev/null 2>&1; then
    "$LAYERFS" --root "$STORE" import "$TGZ" "$IMAGE" >/dev/null
  fi
}

prepare_debs() {
  local pkg files=0
  mkdir -p "$WORK/debs"
  for pkg in "${DEBS[@]}"; do
    compgen -G "$WORK/debs/${pkg}_*.deb" >/dev/null && continue
    (cd "$WORK/debs" && apt-get download -q "$pkg" >/dev/null 2>&1) || die "apt-get download $pkg failed"
  done
  for pkg in "$WORK"/debs/*.deb; do
    files=$((files + $(dpkg-deb -c "$pkg" | grep -vc '^d')))
  done
  echo "unpack row: $(basename -a "$WORK"/debs/*.deb | tr '\n' ' ')($files files and links)"
}

# --- mounts of rows python and unpack: a fresh upper each, MNT set --------------------------------
MNT=
SEQ=0
mount_col() { # COLUMN
  local col=$1 dir=$RUN/$1
  rm -rf "$dir"
  mkdir -p "$dir/mnt" "$dir/upper" "$dir/work"
  MNT=$dir/mnt
  local opts="lowerdir=$ROOTFS,upperdir=$dir/upper,workdir=$dir/work" no_open=()
  [[ $col == *-noopen ]] && no_open=(-o no_open) && opts+=,no_open
  case $(base_col "$col") in
  kernel) mount -t overlay overlay -o "$opts" "$MNT" ;;
  fuse-overlayfs) fuse-overlayfs -o "$opts" "$MNT" ;;
  layerfs-overlay*) LAYERFS_INDEX_CACHE=$(index_cache "$col") "$(overlay_bin "$col")" -o "$opts" "$MNT" ;;
  layerfs)
    SEQ=$((SEQ + 1))
    LAYERFS_NAMES+=("startbench-$$-$SEQ")
    "$LAYERFS" --root "$STORE" mount --name "startbench-$$-$SEQ" "${no_open[@]}" "$IMAGE" "$MNT" >/dev/null
    ;;
  esac
  for _ in $(seq 500); do
    mountpoint -q "$MNT" && return 0
    sleep 0.01
  done
  die "$col: $MNT is not mounted after 5 s"
}

umount_col() { # COLUMN
  if [ "$(base_col "$1")" = layerfs ]; then
    "$LAYERFS" --root "$STORE" umount "$MNT" >/dev/null
    "$LAYERFS" --root "$STORE" rm -f "${LAYERFS_NAMES[-1]}" >/dev/null
  else
    umount "$MNT"
  fi
  rm -rf "${RUN:?}/$1"
}

# The daemon's request counts by opcode as JSON ({} for a column without them, or no MNT).
request_counts() { # COLUMN
  local bin
  bin=$(stats_bin "$1")
  if [ -n "$bin" ] && [ -n "$MNT" ]; then "$bin" stats --format json "$MNT"; else echo '{}'; fi
}
# "TOTAL OP=N OP=N ..." of the requests between two request_counts (largest first; "" without).
request_delta() { # BEFORE AFTER
  python3 -c '
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
d = {op: n - a.get(op, 0) for op, n in b.items() if n != a.get(op, 0)}
if b:
    print(sum(d.values()), " ".join(f"{op}={n}" for op, n in sorted(d.items(), key=lambda kv: -kv[1])))' "$1" "$2"
}

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }

# Times COMMAND in the mount and appends the CSV line; the output's last line must be EXPECT.
timed() { # ROW COLUMN ROUND RUN EXPECT COMMAND...
  local row=$1 col=$2 round=$3 run=$4 expect=$5
  shift 5
  local before after t0 t1 out status=0 req
  before=$(request_counts "$col")
  t0=$EPOCHREALTIME
  out=$("$@" 2>&1) || status=$?
  t1=$EPOCHREALTIME
  after=$(request_counts "$col")
  printf '%s\n' "$out" >"$KEEP/$row-$col.out"
  [ "$status" -eq 0 ] || die "$row on $col: exit $status: $(tail -n3 <<<"$out")"
  [ -z "$expect" ] || [ "$(tail -n1 <<<"$out")" = "$expect" ] || die "$row on $col: unexpected output: $(tail -n3 <<<"$out")"
  req=$(request_delta "$before" "$after")
  echo "$row,$col,$round,$run,$(elapsed "$t0" "$t1"),${req%% *},${req#* }" >>"$CSV"
  printf '%-7s %-22s round %d run %d: %s s%s\n' "$row" "$col" "$round" "$run" "$(elapsed "$t0" "$t1")" "${req:+  ${req%% *} requests}"
}

rotated() { # ROUND COLUMN...: the columns, starting one further each round
  local r=$1
  shift
  local cols=("$@") i
  for ((i = 0; i < $#; i++)); do echo "${cols[$(((i + r - 1) % $#))]}"; done
}

# Row python: one mount per column and round, one untimed run (warm), then 3 timed runs.
row_python() {
  local r col i
  for r in $(seq "$ROUNDS"); do
    for col in $(rotated "$r" "${COLS[@]}"); do
      mount_col "$col"
      "${IN_ROOT[@]}" "$MNT" "${PY_CMD[@]}" >/dev/null || die "python on $col: the priming run failed"
      for i in 1 2 3; do timed python "$col" "$r" "$i" ok "${IN_ROOT[@]}" "$MNT" "${PY_CMD[@]}"; done
      umount_col "$col"
    done
  done
}

# Row unpack: a fresh mount per run; the .deb files copied in and the disks synced, untimed.
row_unpack() {
  local r col deb in_mnt=()
  for deb in "$WORK"/debs/*.deb; do in_mnt+=("/tmp/$(basename "$deb")"); done
  for r in $(seq "$ROUNDS"); do
    for col in $(rotated "$r" "${COLS[@]}"); do
      mount_col "$col"
      cp "$WORK"/debs/*.deb "$MNT/tmp/"
      sync
      timed unpack "$col" "$r" 1 "" "${IN_ROOT[@]}" "$MNT" dpkg --force-depends --unpack "${in_mnt[@]}"
      for deb in "${DEBS[@]}"; do # the unpack landed: dpkg's database says so
        # shellcheck disable=SC2016 # dpkg-query's format, not the shell's
        [[ $("${IN_ROOT[@]}" "$MNT" dpkg-query -W -f '${Status}' "$deb") == *" unpacked" ]] ||
          die "unpack on $col: $deb is not unpacked"
      done
      umount_col "$col"
    done
  done
}

# --- row podman: one private store per column, as tests/podman/podman_test.sh sets one up ------
pm() { # COLUMN PODMAN_ARGS...: podman on the column's store
  local col=$1 dir=$WORK/podman/$1
  shift
  local program=()
  [ "$col" = kernel ] || program=(--storage-opt "overlay.mount_program=$(overlay_bin "$col")")
  [[ $col == *-noopen ]] && program+=(--storage-opt overlay.mountopt=no_open)
  # The global flags go on the command line: conmon's cleanup call gets them, not our env.
  CONTAINERS_STORAGE_CONF=$dir/storage.conf CONTAINERS_CONF=$dir/containers.conf \
    CONTAINERS_REGISTRIES_CONF=$dir/registries.conf TMPDIR=$dir/tmp LAYERFS_INDEX_CACHE=$(index_cache "$col") \
    podman --root "$dir/root" --runroot "$RUNROOTS/$col" --runtime runc --cgroup-manager=cgroupfs \
    --storage-driver=overlay "${program[@]}" "$@"
}
PODMAN_RUN=(run --rm --network=none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

podman_store() { # COLUMN: the store, the image imported, a checked warm-up run
  local col=$1 dir=$WORK/podman/$1 want fstype
  mkdir -p "$dir"/{root,tmp,networks} "$RUNROOTS/$col"
  {
    printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' "$dir/root" "$RUNROOTS/$col"
    [ "$col" = kernel ] || printf '[storage.options.overlay]\nmount_program = "%s"\n' "$(overlay_bin "$col")"
    [[ $col != *-noopen ]] || printf 'mountopt = "no_open"\n'
  } >"$dir/storage.conf"
  cat >"$dir/containers.conf" <<EOF
[engine]
events_logger = "file"
events_logfile_path = "$dir/events.log"
tmp_dir = "$RUNROOTS/$col/libpod"
image_copy_tmp_dir = "$dir/tmp"
[network]
network_config_dir = "$dir/networks"
EOF
  echo 'unqualified-search-registries = []' >"$dir/registries.conf"
  pm "$col" image exists localhost/python:3.11 || pm "$col" import -q "$TGZ" localhost/python:3.11 >/dev/null
  # The container's root is what the store claims: the fstype of "/" in its own mountinfo.
  case $col in
  kernel) want=overlay ;;
  fuse-overlayfs) want=fuse.fuse-overlayfs ;;
  *) want=fuse.layerfs ;;
  esac
  # shellcheck disable=SC2016 # awk's fields
  fstype=$(pm "$col" "${PODMAN_RUN[@]}" localhost/python:3.11 awk '$5 == "/" { print $(NF - 2) }' /proc/self/mountinfo)
  [ "$fstype" = "$want" ] || die "podman $col: the container's root is '$fstype', not $want"
  [ "$(pm "$col" "${PODMAN_RUN[@]}" localhost/python:3.11 python3 -c "$PODMAN_PY")" = ok ] ||
    die "podman $col: the warm-up run failed"
  echo "podman $col: store ready, container root $fstype"
}

row_podman() {
  local r col
  MNT= # podman mounts and unmounts each container itself: no request counts
  for col in "${PODMAN_COLS[@]}"; do podman_store "$col"; done
  for r in $(seq "$ROUNDS"); do
    for col in $(rotated "$r" "${PODMAN_COLS[@]}"); do
      timed podman "$col" "$r" 1 ok pm "$col" "${PODMAN_RUN[@]}" localhost/python:3.11 python3 -c "$PODMAN_PY"
    done
  done
}

# --- the run ----------------------------------------------------------------------------------
mkdir -p "$WORK" "$KEEP" "$(dirname "$CSV")"
unmount_all_under "$WORK" # a killed run's mounts
rm -rf "$RUN"
prepare_image
echo "row,column,round,run,seconds,requests,opcodes" >"$CSV"
echo "columns: ${COLS[*]}; $ROUNDS round(s), each starting one column further"
for row in "${rows[@]}"; do
  case $row in
  python) row_python ;;
  unpack)
    prepare_debs
    row_unpack
    ;;
  podman) row_podman ;;
  esac
done

# --- medians, ratios, targets, requests ---------------------------------------------------------
python3 - "$CSV" "${NOTES[@]}" <<'PY'
import csv, statistics, sys
runs = list(csv.DictReader(open(sys.argv[1])))
by = {}
for r in runs:
    by.setdefault((r["row"], r["column"]), []).append(r)
# The issue's targets: x kernel overlayfs at most, and whether fuse-overlayfs must be beaten.
targets = {"python": (1.2, False), "podman": (1.2, True), "unpack": (1.5, True)}
med = {k: statistics.median(float(r["seconds"]) for r in rs) for k, rs in by.items()}
print("\n| row | column | runs | median s | x kernel | target | verdict |")
print("| --- | --- | ---: | ---: | ---: | --- | --- |")
for (row, col), m in med.items():
    k, f = med.get((row, "kernel")), med.get((row, "fuse-overlayfs"))
    limit, beat_fuse = targets[row]
    target, verdict = "", ""
    if col.startswith("layerfs") and k:
        target = f"<= {limit}x kernel" + (", < fuse-overlayfs" if beat_fuse else "")
        ok = m <= limit * k and (not beat_fuse or (f is not None and m < f))
        verdict = "met" if ok else "MISSED"
    print(f"| {row} | {col} | {len(by[(row, col)])} | {m:.3f} | {m / k:.2f} | {target} | {verdict} |" if k else
          f"| {row} | {col} | {len(by[(row, col)])} | {m:.3f} | - | | |")
counted = {k: rs for k, rs in by.items() if rs[0]["requests"]}
if counted:
    print("\nFUSE requests per run (the daemon's counts, `layerfs stats`; medians, by opcode):\n")
    print("| row | column | requests | by opcode |")
    print("| --- | --- | ---: | --- |")
for (row, col), rs in counted.items():
    ops = {}
    for r in rs:
        for item in r["opcodes"].split():
            op, n = item.split("=")
            ops.setdefault(op, []).append(int(n))
    mix = {op: statistics.median(v + [0] * (len(rs) - len(v))) for op, v in ops.items()}
    mix_text = ", ".join(f"{op} {n:g}" for op, n in sorted(mix.items(), key=lambda kv: -kv[1]) if n)
    print(f"| {row} | {col} | {statistics.median(int(r['requests']) for r in rs):g} | {mix_text} |")
for note in sys.argv[2:]:
    print(f"\nNote: {note}")
with open(sys.argv[1], "a") as f:
    for (row, col), m in med.items():
        f.write(f"{row},{col},median,,{m:.4f},,\n")
PY
echo "per-run figures: $CSV; command output of the last runs: $KEEP"
