#!/bin/bash
# lazy_bench: `layerfs mount --lazy` (eStargz) against eager `layerfs pull` + `mount`, with the
# registry behind a shaped link (issue 17). Root. Everything it makes (network namespace, veth
# pair, registry, proxy, stores, mounts) is removed when it ends, also on failure or Ctrl-C;
# only the built images and the registry's storage stay cached under WORK.
#
#   bench/lazy_bench.sh [LAYERFS_BINARY]
#   env: ROUNDS (3), RATE (100mbit), DELAY_MS (20), ROWS (python,redis,big,eager),
#        WORK (/var/tmp/layerfs-lazybench), CSV (bench/runs/<date>-lazy.csv)
# bench/README.md describes the rows.
set -euo pipefail
shopt -s inherit_errexit

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/rootfs_image.sh
source "$HERE/rootfs_image.sh"
LAYERFS=$(realpath "${1:-${LAYERFS:-$HERE/../build/tools/layerfs}}")
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-100mbit}
DELAY_MS=${DELAY_MS:-20}
ROWS=${ROWS:-python,redis,big,eager}
WORK=${WORK:-/var/tmp/layerfs-lazybench}
CSV=${CSV:-$HERE/runs/$(date -u +%F)-lazy.csv}

die() { echo "lazy_bench: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (network namespace, tc, mounts, drop_caches)"
for tool in docker-registry mmdebstrap strace ip tc python3 curl chroot; do
  command -v "$tool" >/dev/null || die "$tool not installed (apt-get install docker-registry mmdebstrap strace iproute2 curl)"
done
[ -x "$LAYERFS" ] || die "no layerfs binary at $LAYERFS"
IFS=, read -r -a rows <<<"$ROWS"
for row in "${rows[@]}"; do
  [[ $row =~ ^(python|redis|big|eager)$ ]] || die "unknown row $row (python, redis, big, eager)"
done

# The link: host end HOST_IP, namespace end REG_IP; the registry listens on REG_IP:5000 (pushes,
# before the link is shaped) and the delaying proxy on REG_IP:5080 (every timed request).
NS=lazybench-$$
VETH=lzb$$h
VETH_NS=lzb$$n
HOST_IP=10.231.7.1
REG_IP=10.231.7.2
PUSH=$REG_IP:5000
PROXY=$REG_IP:5080
STATS_PORT=5081
# A run killed with SIGKILL leaves its namespace and veth pair: its addresses would clash.
grep -q " $HOST_IP/" < <(ip -o addr show) && die "$HOST_IP is in use (a killed run's veth? ip link del ...)"
RUN=$(mktemp -d /tmp/layerfs-lazybench-XXXXXX)
KEEP=$WORK/last-run # proxy log, registry log and daemon logs of the last run, for analysis
STORE=$WORK/store   # the store the images are built in and pushed from
REG_PID=
PROXY_PID=

cleanup() {
  set +e
  local m
  awk -v r="$RUN" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
  [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null
  ip netns del "$NS" 2>/dev/null
  ip link del "$VETH" 2>/dev/null
  rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.3f\n", a - b }'; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
lf() { "$LAYERFS" "$@"; }
# In the container: a clean environment, so nothing of the host's (PYTHONPATH, ...) leaks in.
IN_ROOT=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 chroot)
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing listens on $1:$2"
}
# The proxy's counters: "down_bytes up_bytes requests".
proxy_counters() { local l; exec 3<>"/dev/tcp/$REG_IP/$STATS_PORT"; read -r l <&3; exec 3<&-; echo "$l"; }
mark() { echo "# $(date +%s.%3N) $*" >>"$KEEP/proxy.log"; }

# --- images, cached under WORK/images and WORK/store -------------------------------------------
mkdir -p "$WORK/images" "$KEEP"
rm -f "$KEEP"/*

image() { # NAME: import (python, redis) or build (big) into the build store once
  lf --root "$STORE" inspect "lazybench/$1:1" >/dev/null 2>&1 && return 0
  case $1 in
  python | redis) lf --root "$STORE" import "$WORK/images/$1.tar.gz" "lazybench/$1:1" >/dev/null ;;
  big)
    local ctx=$WORK/images/bigctx
    if [ ! -f "$ctx/big.bin" ]; then
      mkdir -p "$ctx"
      # 1 GiB of seeded pseudo-random bytes: the same every run, incompressible.
      python3 -c '
import random, sys
r = random.Random(17)
with open(sys.argv[1], "wb") as f:
    for _ in range(1024):
        f.write(r.randbytes(1 << 20))' "$ctx/big.bin.tmp"
      mv "$ctx/big.bin.tmp" "$ctx/big.bin"
    fi
    printf 'FROM lazybench/python:1\nCOPY big.bin /big.bin\n' >"$ctx/Dockerfile"
    lf --root "$STORE" build -q -t lazybench/big:1 "$ctx" >/dev/null
    ;;
  esac
}

# The read-first files of a command: one run in an eager mount under strace; every file opened
# or executed successfully after the chroot, with symlinks resolved inside the image (the
# prefetch list names regular files as the layer holds them).
record_prefetch() { # NAME COMMAND...
  local name=$1 list=$WORK/images/$1.prefetch mnt=$RUN/record-$1
  shift
  [ -f "$list" ] && return 0
  mkdir -p "$mnt"
  lf --root "$STORE" mount "lazybench/$name:1" "$mnt" >/dev/null
  strace -f -qq -e trace=chroot,open,openat,execve -o "$RUN/trace-$name" \
    "${IN_ROOT[@]}" "$mnt" "$@" >/dev/null
  python3 - "$RUN/trace-$name" "$mnt" >"$list.tmp" <<'PY'
import os, re, sys
trace, root = sys.argv[1], sys.argv[2]
seen, out, in_root = set(), [], False
for line in open(trace):
    if re.search(r'\bchroot\(".*"\) = 0', line):
        in_root = True
        continue
    m = re.search(r'\b(?:open|openat|execve)\((?:AT_FDCWD, )?"([^"]+)".*\) = (\d+)', line)
    if not in_root or not m or not m.group(1).startswith("/"):
        continue
    path = m.group(1)
    # Resolve symlinks inside the image: relative to root, never escaping it.
    for _ in range(40):
        parts, cur = path.strip("/").split("/"), ""
        for i, p in enumerate(parts):
            nxt = cur + "/" + p
            full = root + nxt
            if os.path.islink(full):
                t = os.readlink(full)
                base = t if t.startswith("/") else os.path.dirname(nxt) + "/" + t
                path = "/" + os.path.normpath("/".join([base] + parts[i + 1:])).lstrip("/")
                break
            cur = nxt
        else:
            break
    if os.path.isfile(root + path) and path not in seen:
        seen.add(path)
        out.append(path)
print("\n".join(out))
PY
  lf --root "$STORE" umount "$mnt" >/dev/null
  mv "$list.tmp" "$list"
  echo "prefetch list for $name: $(wc -l <"$list") files ($list)"
}

PY_CMD=(python3 -c "import asyncio, json, email.mime.text, http.client, sqlite3, xml.dom.minidom; print('ok')")
REDIS_CMD=(redis-server --version)
BIG_CMD=(sha256sum /big.bin)

rootfs_image "$WORK/images" python python3
rootfs_image "$WORK/images" redis redis-server
image python
image redis
image big
record_prefetch python "${PY_CMD[@]}"
record_prefetch redis "${REDIS_CMD[@]}"
BIG_SUM=$(cat "$WORK/images/bigctx/big.bin.sha256" 2>/dev/null || true)
if [ -z "$BIG_SUM" ]; then
  BIG_SUM=$(sha256sum "$WORK/images/bigctx/big.bin" | cut -d' ' -f1)
  echo "$BIG_SUM" >"$WORK/images/bigctx/big.bin.sha256"
fi

# --- the link ---------------------------------------------------------------------------------
ip netns add "$NS"
ip link add "$VETH" type veth peer name "$VETH_NS"
ip link set "$VETH_NS" netns "$NS"
ip addr add "$HOST_IP/30" dev "$VETH"
ip link set "$VETH" up
ip -n "$NS" addr add "$REG_IP/30" dev "$VETH_NS"
ip -n "$NS" link set "$VETH_NS" up
ip -n "$NS" link set lo up

mkdir -p "$WORK/registry"
cat >"$RUN/registry.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: false}}
storage: {filesystem: {rootdirectory: $WORK/registry}, delete: {enabled: true}}
http: {addr: 0.0.0.0:5000}
YML
ip netns exec "$NS" docker-registry serve "$RUN/registry.yml" >"$KEEP/registry.log" 2>&1 &
REG_PID=$!
wait_port "$REG_IP" 5000
ip netns exec "$NS" python3 "$HERE/delay_proxy.py" --listen "$PROXY" --upstream 127.0.0.1:5000 \
  --delay-ms "$DELAY_MS" --stats-port "$STATS_PORT" --log "$KEEP/proxy.log" &
PROXY_PID=$!
wait_port "$REG_IP" 5080

# Pushes go straight to the registry before the link is shaped: they are not measured, and a
# second run finds every blob there already.
push() { # NAME TAG [push options]
  local name=$1 tag=$2
  shift 2
  lf --root "$STORE" tag "lazybench/$name:1" "$PUSH/lazybench/$name:$tag"
  lf --root "$STORE" push -q "$@" "$PUSH/lazybench/$name:$tag" --insecure-registry "$PUSH" >/dev/null
}
for name in python redis big; do
  push "$name" plain
  list=$WORK/images/$name.prefetch
  [ "$name" = big ] && list=$WORK/images/python.prefetch # its base layer is python's
  push "$name" estargz --estargz --prefetch-list "$list"
done

# tbf on both egresses: the namespace's veth end shapes what the registry sends (downloads),
# the host's end what the client sends.
tc qdisc add dev "$VETH" root tbf rate "$RATE" burst 64kb latency 50ms
ip netns exec "$NS" tc qdisc add dev "$VETH_NS" root tbf rate "$RATE" burst 64kb latency 50ms

# The shaping check: 100 MB of the big layer's blob in one Range GET through the proxy.
big_blob=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
  "http://$PROXY/v2/lazybench/big/manifests/plain" |
  python3 -c 'import json, sys; print(max(json.load(sys.stdin)["layers"], key=lambda l: l["size"])["digest"])')
read -r t_check n_check < <(curl -sf -r 0-99999999 -o /dev/null -w '%{time_total} %{size_download}\n' \
  "http://$PROXY/v2/lazybench/big/blobs/$big_blob")
printf 'link check: %d bytes in %.2f s through the proxy = %.1f Mbit/s (RATE=%s, DELAY_MS=%s)\n' \
  "$n_check" "$t_check" "$(awk -v n="$n_check" -v t="$t_check" 'BEGIN { print n * 8 / t / 1e6 }')" "$RATE" "$DELAY_MS"

# --- the rows -----------------------------------------------------------------------------------
mkdir -p "$(dirname "$CSV")"
echo "row,mode,round,first_s,total_s,bytes_first,bytes_total,requests_first,requests_total" >"$CSV"

# Runs COMMAND in the mount and prints the time its first output line arrived (since T0); the
# line must match EXPECT.
first_output() { # T0 MNT EXPECT COMMAND...
  local t0=$1 mnt=$2 expect=$3 line
  shift 3
  # A command that goes on writing after its first line may die of SIGPIPE: the line decides.
  line=$("${IN_ROOT[@]}" "$mnt" "$@" | head -n1) || true
  local t
  t=$(since "$t0")
  [[ $line == *"$expect"* ]] || die "unexpected output from $*: '$line'"
  echo "$t"
}

# One timed run: prints "first_s total_s bytes_first bytes_total requests_first requests_total".
run_once() { # MODE ROW TAG EXPECT COMMAND...
  local mode=$1 row=$2 tag=$3 expect=$4
  shift 4
  local store=$RUN/store mnt=$RUN/mnt ref=$PROXY/lazybench/$row:$tag
  rm -rf "$store"
  mkdir -p "$mnt"
  drop_caches
  mark "$row $mode start"
  local c0 c1 c2 t0 tf tt
  read -r -a c0 < <(proxy_counters)
  t0=$(now)
  if [ "$mode" = eager ]; then
    # --insecure-registry takes several values: after the positionals, or it swallows them.
    lf --root "$store" pull -q "$ref" --insecure-registry "$PROXY" >/dev/null
    lf --root "$store" mount "$ref" "$mnt" >/dev/null
  else
    lf --root "$store" mount --lazy "$ref" "$mnt" --insecure-registry "$PROXY" >/dev/null
  fi
  tf=$(first_output "$t0" "$mnt" "$expect" "$@")
  read -r -a c1 < <(proxy_counters)
  mark "$row $mode first output"
  tt=$tf
  if [ "$mode" = lazy ]; then
    local log
    log=$(echo "$store"/containers/*/daemon.log)
    [ -f "$log" ] || die "no daemon log in $store/containers"
    # The end of the background fetch is one line in the daemon's log; any other line from the
    # daemon but its start-up line is a failed read or a failed fetch.
    for _ in $(seq 18000); do # 30 min
      grep -q ' complete: ' "$log" && break
      grep -v -e 'FUSE requests over' "$log" | grep -q '^layerfs: ' && break
      sleep 0.1
    done
    grep -q ' complete: ' "$log" || die "$row: the background fetch did not complete: $(tail -n3 "$log")"
    tt=$(since "$t0")
    cp "$log" "$KEEP/daemon-$row-$(date +%s).log"
  fi
  read -r -a c2 < <(proxy_counters)
  mark "$row $mode end"
  lf --root "$store" umount "$mnt" >/dev/null
  rm -rf "$store"
  echo "$tf $tt $((c1[0] - c0[0])) $((c2[0] - c0[0])) $((c1[2] - c0[2])) $((c2[2] - c0[2]))"
}

# Alternating rounds of two modes; one CSV line per run.
compare() { # ROW MODE_A TAG_A MODE_B TAG_B EXPECT COMMAND...
  local row=$1 ma=$2 ta=$3 mb=$4 tb=$5 expect=$6 r first second
  shift 6
  for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then first="$ma $ta"; second="$mb $tb"; else first="$mb $tb"; second="$ma $ta"; fi
    for pair in "$first" "$second"; do
      read -r mode tag <<<"$pair"
      local label=$mode
      [[ $row == eager-* ]] && label=$tag # both columns eager: name them by image
      local v
      v=$(run_once "$mode" "${row#eager-}" "$tag" "$expect" "${@}")
      echo "$row,$label,$r,${v// /,}" >>"$CSV"
      awk -v h="$row $label $r" -v v="$v" 'BEGIN {
        split(h, a, " "); split(v, b, " ")
        printf "%-12s %-8s round %d: first output %7.2fs  complete %7.2fs  %7.1f MB before first output, %7.1f MB in all, %d/%d requests\n", a[1], a[2], a[3], b[1], b[2], b[3] / 1e6, b[4] / 1e6, b[5], b[6]
      }'
    done
  done
}

for row in "${rows[@]}"; do
  case $row in
  python) compare python eager plain lazy estargz ok "${PY_CMD[@]}" ;;
  redis) compare redis eager plain lazy estargz "Redis server" "${REDIS_CMD[@]}" ;;
  big) compare big eager plain lazy estargz "$BIG_SUM" "${BIG_CMD[@]}" ;;
  eager) # the eager path on an eStargz image against the plain one: pull + mount + command
    compare eager-python eager plain eager estargz ok "${PY_CMD[@]}"
    compare eager-redis eager plain eager estargz "Redis server" "${REDIS_CMD[@]}"
    ;;
  esac
done

# --- medians ------------------------------------------------------------------------------------
python3 - "$CSV" <<'PY'
import csv, statistics, sys
runs = list(csv.DictReader(open(sys.argv[1])))
med = {}
for r in runs:
    med.setdefault((r["row"], r["mode"]), []).append(r)
def m(rs, k):
    return statistics.median(float(r[k]) for r in rs)
rows = []
print("\n| row | mode | first output s | complete s | MB before first output | MB in all | requests first / all |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
for (row, mode), rs in med.items():
    v = {k: m(rs, k) for k in ("first_s", "total_s", "bytes_first", "bytes_total", "requests_first", "requests_total")}
    rows.append((row, mode, v))
    print(f"| {row} | {mode} | {v['first_s']:.2f} | {v['total_s']:.2f} | {v['bytes_first'] / 1e6:.1f} | "
          f"{v['bytes_total'] / 1e6:.1f} | {v['requests_first']:.0f} / {v['requests_total']:.0f} |")
with open(sys.argv[1], "a") as f:
    for row, mode, v in rows:
        f.write(f"{row},{mode},median,{v['first_s']:.3f},{v['total_s']:.3f},{v['bytes_first']:.0f},"
                f"{v['bytes_total']:.0f},{v['requests_first']:.0f},{v['requests_total']:.0f}\n")
print()
byrow = {(r, mo): v for r, mo, v in rows}
targets = {"python": ("first_s", 0.25, "lazy first output / eager"),
           "redis": ("first_s", None, "lazy first output / eager"),
           "big": ("first_s", 1.10, "lazy sha256sum done / eager")}
for row, (k, target, what) in targets.items():
    if (row, "lazy") in byrow and (row, "eager") in byrow:
        ratio = byrow[(row, "lazy")][k] / byrow[(row, "eager")][k]
        verdict = "" if target is None else f" (target <= {target}: {'met' if ratio <= target else 'MISSED'})"
        print(f"{row}: {what} = {ratio:.3f}{verdict}")
for row in ("eager-python", "eager-redis"):
    if (row, "estargz") in byrow and (row, "plain") in byrow:
        print(f"{row}: eager pull+mount+run of the eStargz image / the plain one = "
              f"{byrow[(row, 'estargz')]['first_s'] / byrow[(row, 'plain')]['first_s']:.2f}")
PY
echo "per-run figures: $CSV; proxy and daemon logs: $KEEP"
