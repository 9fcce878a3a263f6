#!/usr/bin/env bash
# layerfs as containerd's snapshotter (issue 13), for real: a private containerd 1.6 (own config,
# root, state and sockets; never the system's) with a proxy plugin pointing at a `layerfs
# snapshotter` this test starts, runc as the runtime, and ctr:
#   images import of a docker-archive (layers with an OCI whiteout); run --rm reading, writing and
#   deleting image files on a fuse.layerfs root; the image's tree through a layerfs view equals
#   the one through containerd's own overlayfs snapshotter; snapshots ls/info/usage/label/
#   prepare/mounts/tree/rm; a hostile key; four runs at once; the snapshotter killed (SIGKILL)
#   while containerd unpacks a layer, restarted, and the retry succeeds with nothing left over;
#   pull --plain-http from a local docker-registry and run; images `layerfs pull` put in the store
#   are taken as store layers, not unpacked again, and survive rmi + prune while containerd names
#   them; SIGTERM stops the snapshotter.
#   Usage: containerd_test.sh LAYERFS_BINARY CRI_PULL   (layerfs-overlay must sit next to
#   LAYERFS_BINARY; CRI_PULL is tests/snapshotter/cri_pull.cc, kubelet's image pull)
# Root only. Exit 0 pass, 1 fail, 77 skip (a tool is missing). Everything lives in one temp dir,
# torn down at exit (tasks, containerd, registry, snapshotter, mounts), also on failure.
set -euo pipefail
layerfs=${1:?usage: containerd_test.sh LAYERFS_BINARY CRI_PULL}
cri_pull=${2:?usage: containerd_test.sh LAYERFS_BINARY CRI_PULL}
here=$(cd "$(dirname "$0")" && pwd)
source_dir=$(cd "$here/../.." && pwd)
# shellcheck source=private_containerd.sh
. "$here/private_containerd.sh"

export PATH="$PATH:/sbin:/usr/sbin"
for tool in containerd ctr runc containerd-shim-runc-v2 mount.fuse3 docker-registry skopeo busybox python3; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "run as root (containerd and runc need it)"
bindir=$(cd "$(dirname "$layerfs")" && pwd)
layerfs=$bindir/$(basename "$layerfs")
[ -x "$bindir/layerfs-overlay" ] || fail "$bindir/layerfs-overlay does not exist (build layerfs first)"
# containerd, its shims and ctr mount fuse3.layerfs-overlay through mount.fuse3, which runs
# layerfs-overlay from PATH.
export PATH="$bindir:$PATH"

work=$(mktemp -d /tmp/layerfs-ctrd.XXXXXX)
sock=$work/containerd.sock
snsock=$work/run/snapshotter.sock
snpid="" CTRD_PID="" REG_PID=""
ns=default  # containerd namespace of c, cl and run
c() { ctr -a "$sock" -n "$ns" "$@"; }
cl() { ctr -a "$sock" -n "$ns" snapshots --snapshotter layerfs "$@"; }
# run IMAGE ID CMD...: `ctr run --rm --snapshotter layerfs`. containerd 1.6's shim may lose the
# exit status of the mount helper to its own child reaper under load ("failed with ECHILD
# (retried 10 times)", containerd#4387; fuse-overlayfs-snapshotter meets it too): that one
# failure is retried under a new container ID, anything else fails.
run() {
  local image=$1 id=$2 attempt
  shift 2
  for attempt in 1 2 3; do
    if c run --rm --snapshotter layerfs "$image" "$id-$attempt" "$@" 2>"$work/run-$id.err"; then return 0; fi
    grep -q ECHILD "$work/run-$id.err" || break
  done
  cat "$work/run-$id.err" >&2
  return 1
}
# new_snapshot SNAPSHOTTER view|prepare NAME PARENT TARGET: makes snapshot NAME-<n> and labels it
# containerd.io/gc.root at once, which keeps containerd's collector off a snapshot no image or
# lease holds; a collection the imports scheduled may take it before the label: then again.
# Sets snap_key, and snap_mount to ctr's "mount -t TYPE SOURCE TARGET -o OPTIONS" when TARGET.
new_snapshot() {
  local attempt
  for attempt in 1 2 3 4 5; do
    snap_key=$3-$attempt
    snap_mount=$(c snapshots --snapshotter "$1" "$2" ${5:+-t "$5"} "$snap_key" "$4")
    c snapshots --snapshotter "$1" label "$snap_key" containerd.io/gc.root=test >/dev/null 2>&1 && return 0
  done
  fail "containerd removed snapshot $3 before it was labelled, 5 times"
}
mounts_under_work() { awk -v w="$work/" 'index($5, w) == 1 {print $5, $9}' /proc/self/mountinfo; }

cleanup() {
  local status=$?
  trap - EXIT
  [ "$status" -ne 77 ] || status=1
  if [ "$status" -ne 0 ]; then
    echo "--- snapshotter log:" >&2
    tail -n 30 "$work/snapshotter.log" >&2 2>/dev/null || true
    echo "--- containerd log:" >&2
    grep -E 'level=(error|warning)' "$work/containerd.log" | tail -n 30 >&2 || true
  fi
  stop_private_containerd "$sock"
  [ -z "$snpid" ] || { kill -TERM "$snpid" 2>/dev/null; wait "$snpid" 2>/dev/null || true; }
  local left
  left=$(mounts_under_work)
  if [ -n "$left" ]; then
    echo "FAIL: mounts left behind: $left" >&2
    status=1
    mounts_under_work | awk '{print $1}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

start_snapshotter() {  # [ENV=VALUE...]: a snapshotter on $snsock, in the background
  env "$@" "$layerfs" --root "$work/store" snapshotter --address "$snsock" 2>>"$work/snapshotter.log" &
  snpid=$!
  for _ in $(seq 100); do
    [ -S "$snsock" ] && return 0
    sleep 0.1
  done
  fail "the snapshotter did not listen on $snsock"
}

echo "== images: a docker-archive (busybox, 2 layers, one OCI whiteout) and a one-layer image"
"$source_dir/samples/make-sample.sh" "$work/image" >/dev/null
mkdir -p "$work/big/bin" "$work/lstore"
cp "$(command -v busybox)" "$work/big/bin/busybox"
ln -s busybox "$work/big/bin/sh"
head -c 8388608 /dev/urandom >"$work/big/blob"
tar -C "$work/big" -czf "$work/big.tar.gz" .
"$layerfs" --root "$work/lstore" import "$work/big.tar.gz" big:1 >/dev/null
"$layerfs" --root "$work/lstore" save big:1 -o "$work/image/big.tar"

echo "== layerfs snapshotter: socket 0600 in a 0700 directory"
start_snapshotter
[ "$(stat -c %a "$snsock")" = 600 ] || fail "socket mode $(stat -c %a "$snsock")"
[ "$(stat -c %a "$work/run")" = 700 ] || fail "socket directory mode $(stat -c %a "$work/run")"

mkdir -p "$work/cni/bin" "$work/cni/conf" "$work/certs.d"
start_private_containerd "$work" "$sock" "$snsock" cri

echo "== ctr images import --snapshotter layerfs"
c images import --snapshotter layerfs "$work/image/sample.tar" >/dev/null
image=docker.io/library/sample:latest
[ "$(cl ls | awk 'NR > 1 && $NF == "Committed"' | wc -l)" -eq 2 ] || fail "import did not commit 2 snapshots: $(cl ls)"

# compare_views TOP_SNAPSHOT NAME: the image's tree through a layerfs view of TOP_SNAPSHOT equals
# the one through containerd's overlayfs snapshotter (WORK/tree-NAME-*), then both views go.
compare_views() {
  local sn type src target opts
  declare -A views
  for sn in layerfs overlayfs; do
    mkdir -p "$work/mnt-$sn"
    # ctr prints "mount -t TYPE SOURCE TARGET -o OPTIONS"; mounted the way containerd's mount
    # package does: fuse3.* types through mount.fuse3 -t <the rest>, others with mount(2).
    new_snapshot "$sn" view "view-$2-$sn" "$1" "$work/mnt-$sn"
    views[$sn]=$snap_key
    read -r _ _ type src target _ opts <<<"$snap_mount"
    case $type in
      fuse3.*) mount.fuse3 "$src" "$target" -o "$opts" -t "${type#fuse3.}" ;;
      *) mount -t "$type" "$src" "$target" -o "$opts" ;;
    esac
  done
  grep -q " $work/mnt-layerfs .* - fuse.layerfs " /proc/self/mountinfo ||
    fail "the layerfs view is not fuse.layerfs: $(grep mnt-layerfs /proc/self/mountinfo)"
  "$here/tree_digest.py" "$work/mnt-layerfs" >"$work/tree-$2-layerfs"
  "$here/tree_digest.py" "$work/mnt-overlayfs" >"$work/tree-$2-overlayfs"
  diff "$work/tree-$2-overlayfs" "$work/tree-$2-layerfs" >&2 || fail "the $2 trees differ (overlayfs < > layerfs)"
  for sn in layerfs overlayfs; do
    umount "$work/mnt-$sn"
    c snapshots --snapshotter "$sn" rm "${views[$sn]}"
  done
}

echo "== the image through a layerfs view equals it through containerd's overlayfs snapshotter"
c images import --snapshotter overlayfs "$work/image/sample.tar" >/dev/null
top=$(cl ls | awk 'NR > 1 && NF == 3 && $3 == "Committed" {print $1}')
[ -n "$top" ] || fail "no committed snapshot with a parent: $(cl ls)"
compare_views "$top" sample
[ "$(wc -l <"$work/tree-sample-layerfs")" -gt 30 ] || fail "the tree is too small: $(wc -l <"$work/tree-sample-layerfs") entries"

echo "== hard links, xattrs, owners, opaque dir, whiteout: containerd's applier = overlayfs = layerfs load"
rich_top=$("$here/make_rich_image.py" "$work/rich.tar")
for sn in layerfs overlayfs; do c images import --snapshotter "$sn" "$work/rich.tar" >/dev/null; done
compare_views "$rich_top" rich
grep -q '^x2 .* links=2 ' "$work/tree-rich-layerfs" || fail "hard link lost: $(grep '^x' "$work/tree-rich-layerfs")"
grep -q '^d/c .*user.test.two=' "$work/tree-rich-layerfs" || fail "xattr lost: $(grep '^d/c' "$work/tree-rich-layerfs")"
if grep -qE '^(gone|d/a) ' "$work/tree-rich-layerfs"; then fail "whiteout or opaque dir not applied"; fi
"$layerfs" --root "$work/lstore" load -i "$work/rich.tar" >/dev/null
mkdir -p "$work/mnt-load"
"$layerfs" --root "$work/lstore" mount --name rich-load rich:1 "$work/mnt-load" >/dev/null
"$here/tree_digest.py" "$work/mnt-load" >"$work/tree-rich-load"
"$layerfs" --root "$work/lstore" umount "$work/mnt-load" >/dev/null
"$layerfs" --root "$work/lstore" rm rich-load >/dev/null
diff "$work/tree-rich-load" "$work/tree-rich-layerfs" >&2 || fail "containerd's unpack differs from layerfs load (load < > containerd)"

echo "== ctr run --rm: the root is fuse.layerfs; read, write, delete image files"
root_fstype='sed -n "s/^[0-9]* [0-9]* [0-9:]* \/ \/ .* - \([^ ]*\) .*/\1/p" /proc/self/mountinfo'
out=$(run "$image" t1 /bin/sh -ec "
  $root_fstype
  cat /etc/motd
  test ! -e /etc/obsolete.conf && echo whiteout-applied
  /usr/bin/hello
  echo written > /root/new.txt && cat /root/new.txt
  rm /etc/motd && test ! -e /etc/motd && echo deleted")
expected="fuse.layerfs
Welcome to the layerfs sample image.
whiteout-applied
hello from layer 2 of Welcome to the layerfs ...
written
deleted"
[ "$out" = "$expected" ] || fail "container output:
$out"

echo "== ctr snapshots: ls, info, usage, label, prepare, mounts, tree, rm"
cl info "$top" | grep -qi '"Kind": "committed"' || fail "info: $(cl info "$top")"
inodes=$(cl usage "$top" | awk 'NR == 2 {print $NF}')
[ "${inodes:-0}" -ge 3 ] || fail "usage: $(cl usage "$top")"
cl label "$top" layerfs.test=yes >/dev/null
cl info "$top" | grep -q '"layerfs.test": "yes"' || fail "label did not stick: $(cl info "$top")"
new_snapshot layerfs prepare k1 "$top" ""
k1=$snap_key
cl mounts "$work/mnt-k1" "$k1" | grep -q '^mount -t fuse3.layerfs-overlay layerfs ' || fail "mounts: $(cl mounts "$work/mnt-k1" "$k1")"
cl tree | grep -q "$k1" || fail "tree: $(cl tree)"
if cl rm "$top" 2>/dev/null; then fail "removed a snapshot that has a child"; fi
cl rm "$k1"
if cl prepare ../../escape "$top" 2>"$work/err"; then fail "accepted the key ../../escape"; fi
grep -q 'invalid argument' "$work/err" || fail "hostile key: $(cat "$work/err")"

echo "== four ctr run at once"
pids=()
for i in 1 2 3 4; do
  run "$image" "p$i" /bin/sh -ec "echo $i > /tmp/mine; sleep 1; cat /tmp/mine; cat /etc/motd" \
    >"$work/p$i.out" 2>&1 &
  pids+=($!)
done
for i in 1 2 3 4; do
  wait "${pids[$((i - 1))]}" || fail "parallel run $i: $(cat "$work/p$i.out")"
  [ "$(cat "$work/p$i.out")" = "$i
Welcome to the layerfs sample image." ] || fail "parallel run $i printed: $(cat "$work/p$i.out")"
done

echo "== the snapshotter killed (SIGKILL) while containerd unpacks a layer; the retry succeeds"
kill -TERM "$snpid"
wait "$snpid"
start_snapshotter LAYERFS_FAILPOINT=snapshotter-commit
if c images import --snapshotter layerfs "$work/image/big.tar" >/dev/null 2>&1; then fail "import survived the crash"; fi
if wait "$snpid"; then fail "the snapshotter was not killed"; fi
start_snapshotter
# containerd's connection to the plugin is in gRPC's reconnect backoff for a moment.
for attempt in $(seq 30); do
  c images import --snapshotter layerfs "$work/image/big.tar" >/dev/null 2>"$work/err" && break
  grep -q 'unavailable' "$work/err" || fail "retried import: $(cat "$work/err")"
  [ "$attempt" -lt 30 ] || fail "containerd did not reconnect: $(cat "$work/err")"
  sleep 1
done
out=$(run docker.io/library/big:1 t2 /bin/sh -c 'ls /blob && /bin/busybox wc -c < /blob')
[ "$out" = "/blob
8388608" ] || fail "run after the crash: $out"

echo "== ctr images pull --plain-http --snapshotter layerfs from a local docker-registry"
start_loopback_registry "$work/registry"
port=$REG_PORT
skopeo copy -q --dest-tls-verify=false "docker-archive:$work/image/sample-alt.tar" "docker://127.0.0.1:$port/alt:1"
c images pull --plain-http --snapshotter layerfs "127.0.0.1:$port/alt:1" >/dev/null
out=$(run "127.0.0.1:$port/alt:1" t3 /usr/bin/hello)
[ "$out" = "hello from the alternative app layer" ] || fail "pulled image: $out"

echo "== images \`layerfs pull\` put in the store are not unpacked again by containerd (CRI pull)"
# kubelet's pulls go through containerd's unpacker, which names the chain it will commit in
# each Prepare (ctr 1.6's pull does not): solo's two layers and sample's top layer are the
# store's; sample's lower layers are ones containerd unpacked itself for samplebase.
mkdir -p "$work/certs.d/127.0.0.1:$port" "$work/solo/bin" "$work/ctx"
printf 'server = "http://127.0.0.1:%s"\n[host."http://127.0.0.1:%s"]\n  capabilities = ["pull", "resolve"]\n' \
  "$port" "$port" >"$work/certs.d/127.0.0.1:$port/hosts.toml"
cp "$(command -v busybox)" "$work/solo/bin/busybox"
ln -s busybox "$work/solo/bin/sh"
echo solo-base >"$work/solo/base.txt"
tar -C "$work/solo" -czf "$work/solo.tar.gz" .
"$layerfs" --root "$work/lstore" import "$work/solo.tar.gz" solo-base:1 >/dev/null
"$layerfs" --root "$work/lstore" load -i "$work/image/sample.tar" >/dev/null
"$layerfs" --root "$work/lstore" tag sample:latest "127.0.0.1:$port/samplebase:1"
"$layerfs" --root "$work/lstore" push -q "127.0.0.1:$port/samplebase:1" >/dev/null
echo fresh-layer >"$work/ctx/fresh"
for base in solo-base:1 sample:latest; do
  name=${base%%[-:]*}
  printf 'FROM %s\nCOPY fresh /fresh\n' "$base" >"$work/ctx/Dockerfile"
  "$layerfs" --root "$work/lstore" build -q -t "127.0.0.1:$port/$name:1" "$work/ctx" >/dev/null
  "$layerfs" --root "$work/lstore" push -q "127.0.0.1:$port/$name:1" >/dev/null
done
"$cri_pull" "$sock" "127.0.0.1:$port/samplebase:1" >/dev/null
for name in solo sample; do "$layerfs" --root "$work/store" pull -q "127.0.0.1:$port/$name:1" >/dev/null; done
snapshot_dirs() { find "$work/store/snapshots" -mindepth 1 -maxdepth 1 -regex '.*/[0-9]+' | wc -l; }
dirs_before=$(snapshot_dirs)
for name in solo sample; do "$cri_pull" "$sock" "127.0.0.1:$port/$name:1" >/dev/null; done
ns=k8s.io
[ "$(snapshot_dirs)" -eq "$dirs_before" ] || fail "containerd unpacked layers the store holds: $(cl ls)"
adopted=$(python3 -c 'import json, sys; print(sum(1 for s in json.load(open(sys.argv[1]))["snapshots"] if s.get("layer")))' \
  "$work/store/snapshots/metadata.json")
[ "$adopted" -eq 3 ] || fail "$adopted snapshots are store layers, not 3: $(cl ls)"
"$layerfs" --root "$work/store" rmi "127.0.0.1:$port/solo:1" "127.0.0.1:$port/sample:1" >/dev/null
"$layerfs" --root "$work/store" system prune -a -f >/dev/null
for name in solo sample; do
  out=$(run "127.0.0.1:$port/$name:1" "s-$name" /bin/sh -ec "
    $root_fstype
    cat /fresh
    echo changed > /fresh && cat /fresh
    { test -e /base.txt || test -e /etc/motd; } && echo lower-ok")
  [ "$out" = "fuse.layerfs
fresh-layer
changed
lower-ok" ] || fail "run of $name on store layers (after rmi and prune): $out"
done
for f in "$work/store/layers/"*/tree/fresh; do
  [ "$(cat "$f")" = "fresh-layer" ] || fail "a container changed the store layer $f"
done
ns=default

echo "== nothing left over: no unpack snapshot, no directory without a record"
catalog=$work/store/snapshots/metadata.json
for _ in $(seq 100); do
  grep -q 'extract-' "$catalog" || break
  sleep 0.2
done
if grep -q 'extract-' "$catalog"; then fail "unpack snapshots left: $(cat "$catalog")"; fi
records=$(python3 -c 'import json, sys; print(" ".join(sorted(str(s["id"]) for s in json.load(open(sys.argv[1]))["snapshots"] if not s.get("layer"))))' "$catalog")
dirs=$(find "$work/store/snapshots" -mindepth 1 -maxdepth 1 -regex '.*/[0-9]+' -printf '%f\n' | LC_ALL=C sort | tr '\n' ' ')
[ "$records" = "${dirs% }" ] || fail "snapshot directories (${dirs% }) differ from the records ($records)"
[ -z "$(mounts_under_work)" ] || fail "mounts left after the containers: $(mounts_under_work)"

echo "== SIGTERM stops the snapshotter cleanly"
stop_private_containerd "$sock"
kill -TERM "$snpid"
wait "$snpid" || fail "the snapshotter exited with $? on SIGTERM"
snpid=""
[ ! -e "$snsock" ] || fail "the socket stayed"
echo "PASS"
