#!/usr/bin/env bash
# podman for real on a mount program (issue 7): a private podman store whose overlay driver
# mounts every container through MOUNT_PROGRAM. Loads a `docker save` archive, runs a container
# that writes, deletes and renames, commits it, runs the committed image and checks every change,
# then does it once more on top of the committed layer; a --uidmap container (its ids, chown,
# commit); a force_mask store (owners and modes set, commit). Checks that the container roots really are
# FUSE mounts of type FSTYPE (not kernel overlayfs) and that nothing stays mounted.
#   Usage: podman_test.sh MOUNT_PROGRAM FSTYPE    e.g. build/tools/layerfs-overlay fuse.layerfs
# Runs as root, offline (--network=none, local archive). Exit 0 pass, 1 fail, 77 skip (podman or
# runc not installed). Everything lives in one temp dir, removed at exit, also on failure.
set -euo pipefail
program=${1:?usage: podman_test.sh MOUNT_PROGRAM FSTYPE}
fstype=${2:?usage: podman_test.sh MOUNT_PROGRAM FSTYPE}
here=$(cd "$(dirname "$0")" && pwd)
source_dir=$(cd "$here/../.." && pwd)

for tool in podman runc; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "run as root (podman's store here is a root store)"
[ -x "$program" ] || fail "mount program $program does not exist (build it first)"
program=$(cd "$(dirname "$program")" && pwd)/$(basename "$program")

work=$(mktemp -d /tmp/layerfs-podman.XXXXXX)
log=$work/mount-program.log
mkdir -p "$work"/{root,runroot,tmp,networks,image}

# Private configuration: nothing written to the host's containers config, no registry (podman
# commit still reads /etc/containers/policy.json: it has no --signature-policy). The wrapper
# execs the program unchanged and only records what containers/storage passed, so that a failure
# shows the exact arguments.
cat >"$work/mount-program" <<EOF
#!/bin/sh
printf '%s\n' "\$*" >>"$log"
exec "$program" "\$@"
EOF
chmod 755 "$work/mount-program"
cat >"$work/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$work/root"
runroot = "$work/runroot"
[storage.options.overlay]
mount_program = "$work/mount-program"
EOF
cat >"$work/containers.conf" <<EOF
[engine]
events_logger = "file"
events_logfile_path = "$work/events.log"
tmp_dir = "$work/runroot/libpod"
image_copy_tmp_dir = "$work/tmp"
[network]
network_config_dir = "$work/networks"
EOF
echo 'unqualified-search-registries = []' >"$work/registries.conf"
echo '{"default": [{"type": "insecureAcceptAnything"}]}' >"$work/policy.json"
export CONTAINERS_STORAGE_CONF=$work/storage.conf CONTAINERS_CONF=$work/containers.conf
export CONTAINERS_REGISTRIES_CONF=$work/registries.conf TMPDIR=$work/tmp

# What this machine needs (issue 7): runc (crun refuses the hybrid cgroup layout), cgroupfs, and
# rlimits no higher than the current ones. The global flags are repeated on the command line
# because conmon's cleanup call (`podman container cleanup`) gets them, not our environment.
podman_cmd=(podman --root "$work/root" --runroot "$work/runroot" --runtime runc
  --cgroup-manager=cgroupfs --storage-driver=overlay --storage-opt "overlay.mount_program=$work/mount-program")
pm() { "${podman_cmd[@]}" "$@"; }
# A second store with force_mask (containers/storage then passes xattr_permissions=).
podman_fm_cmd=(podman --root "$work/root-fm" --runroot "$work/runroot-fm" --runtime runc --cgroup-manager=cgroupfs
  --storage-driver=overlay --storage-opt "overlay.mount_program=$work/mount-program" --storage-opt overlay.force_mask=0700)
pm_fm() { "${podman_fm_cmd[@]}" "$@"; }
run_opts=(--network=none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

mounts_under_work() { awk -v w="$work/" 'index($5, w) == 1 {print $5, $9}' /proc/self/mountinfo; }

cleanup() {
  local status=$?
  trap - EXIT
  [ "$status" -ne 77 ] || status=1   # past the preflight, nothing may turn into a skip
  if [ "$status" -ne 0 ] && [ -s "$log" ]; then
    echo "--- mount program calls (containers/storage's arguments):" >&2
    cat "$log" >&2
  fi
  timeout 60 "${podman_cmd[@]}" rm -a -f -t 0 >/dev/null 2>&1 || true
  timeout 60 "${podman_cmd[@]}" rmi -a -f >/dev/null 2>&1 || true
  timeout 60 "${podman_fm_cmd[@]}" rm -a -f -t 0 >/dev/null 2>&1 || true
  timeout 60 "${podman_fm_cmd[@]}" rmi -a -f >/dev/null 2>&1 || true
  # Deepest first: container roots, then the private bind mount containers/storage puts on its home.
  mounts_under_work | awk '{print $1}' | sort -r | while read -r mnt; do
    umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
  done
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

expect() {  # expect NAME EXPECTED ACTUAL
  [ "$2" = "$3" ] && return 0
  echo "FAIL: $1 differs" >&2
  diff <(printf '%s\n' "$2") <(printf '%s\n' "$3") >&2 || true
  exit 1
}

# The container's own view of its root mount: the fstype field of "/"'s line in mountinfo.
root_fstype='sed -n "s/^[0-9]* [0-9]* [0-9:]* \/ \/ .* - \([^ ]*\) .*/\1/p" /proc/self/mountinfo'

echo "== docker-save archive of a busybox image (2 layers, one OCI whiteout)"
"$source_dir/samples/make-sample.sh" "$work/image" >/dev/null
pm load -q --signature-policy "$work/policy.json" -i "$work/image/sample.tar" >/dev/null
pm image exists localhost/sample:latest || fail "podman load did not create localhost/sample:latest"

echo "== run: write, copy up, chown, symlink, delete an image file, rename an image directory"
out=$(pm run --name writer "${run_opts[@]}" localhost/sample:latest /bin/sh -ec "
  $root_fstype
  echo 'written in the container' > /root/new.txt
  mkdir -p /srv/data/deep
  printf 'line 1\nline 2\n' > /srv/data/deep/file.txt
  busybox chown 1000:1000 /srv/data/deep/file.txt
  chmod 640 /srv/data/deep/file.txt
  ln -s ../root/new.txt /srv/link
  echo 'app:x:1000:1000::/srv:/bin/sh' >> /etc/passwd
  rm /etc/motd
  mv /usr/bin /usr/tools
  test ! -e /usr/bin && test -x /usr/tools/hello && echo renamed")
expect "writer output (root fstype, rename)" "$fstype
renamed" "$out"

echo "== podman mount: the stopped container's root on the host"
mnt=$(pm mount writer)
expect "host fstype of $mnt" "$fstype" "$(findmnt -n -o FSTYPE --mountpoint "$mnt")"
expect "host view of /root/new.txt" "written in the container" "$(cat "$mnt/root/new.txt")"
[ ! -e "$mnt/etc/motd" ] && [ ! -e "$mnt/usr/bin" ] && [ -x "$mnt/usr/tools/hello" ] ||
  fail "host view of $mnt does not show the deletion and the rename"
pm umount writer >/dev/null
! findmnt -n --mountpoint "$mnt" >/dev/null || fail "$mnt still mounted after podman umount"

echo "== commit, then run the committed image"
pm commit -q writer localhost/sample:changed >/dev/null
expect "layers of the committed image" 3 "$(pm image inspect --format '{{len .RootFS.Layers}}' localhost/sample:changed)"
check_changes='
  cat /root/new.txt
  cat /srv/data/deep/file.txt
  stat -c "%u:%g %a" /srv/data/deep/file.txt
  readlink /srv/link; cat /srv/link
  tail -n 1 /etc/passwd
  test -e /etc/motd && echo "motd present" || echo "motd absent"
  test -e /etc/obsolete.conf && echo "obsolete present" || echo "obsolete absent"
  test -e /usr/bin && echo "usr/bin present" || echo "usr/bin absent"
  ls /usr/tools
  head -n 1 /usr/tools/hello
  test -x /usr/tools/hello && echo executable'
expected_changes="written in the container
line 1
line 2
1000:1000 640
../root/new.txt
written in the container
app:x:1000:1000::/srv:/bin/sh
motd absent
obsolete absent
usr/bin absent
hello
#!/bin/sh
executable"
out=$(pm run --rm "${run_opts[@]}" localhost/sample:changed /bin/sh -c "$root_fstype; $check_changes")
expect "committed image" "$fstype
$expected_changes" "$out"

echo "== second generation: delete and recreate on top of the committed layer"
out=$(pm run --name writer2 "${run_opts[@]}" localhost/sample:changed /bin/sh -ec "
  rm /root/new.txt
  rm -r /srv/data
  mkdir /usr/bin
  echo 'a new /usr/bin' > /usr/bin/readme
  mv /usr/tools/hello /usr/tools/hello2
  echo done")
expect "second writer" "done" "$out"
pm commit -q writer2 localhost/sample:gen2 >/dev/null
out=$(pm run --rm "${run_opts[@]}" localhost/sample:gen2 /bin/sh -c '
  test -e /root/new.txt && echo "new.txt present" || echo "new.txt absent"
  test -e /srv/data && echo "data present" || echo "data absent"
  readlink /srv/link
  cat /usr/bin/readme
  ls /usr/bin /usr/tools
  tail -n 1 /etc/passwd')
expect "second generation image" "new.txt absent
data absent
../root/new.txt
a new /usr/bin
/usr/bin:
readme

/usr/tools:
hello2
app:x:1000:1000::/srv:/bin/sh" "$out"

echo "== --uidmap 0:100000:65536: the image's ids, chown of a file, a dir and a symlink, commit"
# podman 4.3 on a kernel with idmapped mounts hands the mount program lowers it already
# idmapped (overlay/<id>/mapped/N) plus uidmapping=: layerfs-overlay must not map them twice.
out=$(pm run --name mapped "${run_opts[@]}" --uidmap 0:100000:65536 --gidmap 0:100000:65536 localhost/sample:latest /bin/sh -ec '
  echo x > /root/f
  chown 1000:1000 /root/f
  mkdir -p /srv/made
  chown 7:7 /srv/made
  ln -s f /root/l
  chown -h 5:5 /root/l
  stat -c "%u:%g %n" /etc/passwd /bin/busybox /root/f /srv/made /root/l
  cat /proc/self/uid_map')
expect "--uidmap container" "0:0 /etc/passwd
0:0 /bin/busybox
1000:1000 /root/f
7:7 /srv/made
5:5 /root/l
         0     100000      65536" "$out"
pm commit -q mapped localhost/sample:mapped >/dev/null
mapped_ids='stat -c "%u:%g %n" /etc/passwd /root/f /srv/made /root/l'
expected_mapped_ids="0:0 /etc/passwd
1000:1000 /root/f
7:7 /srv/made
5:5 /root/l"
expect "image committed from a --uidmap container" "$expected_mapped_ids" \
  "$(pm run --rm "${run_opts[@]}" localhost/sample:mapped /bin/sh -c "$mapped_ids")"
expect "that image under another --uidmap" "$expected_mapped_ids" \
  "$(pm run --rm "${run_opts[@]}" --uidmap 0:200000:65536 --gidmap 0:200000:65536 localhost/sample:mapped /bin/sh -c "$mapped_ids")"
if grep -q '/mapped/' "$log"; then echo "   (lowers idmapped by podman, as on this kernel)"; fi

echo "== force_mask store: owners and modes the container sets, commit"
pm_fm load -q --signature-policy "$work/policy.json" -i "$work/image/sample.tar" >/dev/null
fm_ids='stat -c "%u:%g %a %n" /etc/passwd /usr/bin/hello /root/f /srv/d'
expected_fm_ids="0:0 644 /etc/passwd
0:0 755 /usr/bin/hello
1000:1000 640 /root/f
7:7 750 /srv/d"
expect "force_mask container" "$expected_fm_ids" "$(pm_fm run --name fm "${run_opts[@]}" localhost/sample:latest /bin/sh -ec "
  echo x > /root/f; chown 1000:1000 /root/f; chmod 640 /root/f
  mkdir -p /srv/d; chmod 750 /srv/d; chown 7:7 /srv/d
  $fm_ids")"
grep -q 'xattr_permissions=' "$log" || fail "containers/storage passed no xattr_permissions= for force_mask"
pm_fm commit -q fm localhost/sample:fm >/dev/null
expect "image committed from the force_mask container" "$expected_fm_ids" \
  "$(pm_fm run --rm "${run_opts[@]}" localhost/sample:fm /bin/sh -c "$fm_ids")"
pm_fm rm -a >/dev/null

echo "== every mount went through the mount program, and is gone"
grep -q 'upperdir=' "$log" || fail "the mount program never mounted a container (log: $log)"
grep -v -q 'upperdir=' "$log" || fail "commit did not mount an image layer read-only through the mount program"
# conmon's own cleanup (`podman container cleanup`) of a container that just exited may still
# hold its shm mount when rm runs (rm fails: unlinkat .../userdata/shm: device or resource busy,
# seen once in CI); rm is idempotent, so ask again.
for try in 1 2 3 4 5; do
  pm rm -a >/dev/null 2>"$work/rm.err" && break
  [ "$try" = 5 ] && { cat "$work/rm.err" >&2; fail "podman rm -a failed 5 times"; }
  sleep 1
done
left=$(mounts_under_work | awk '$2 ~ /^fuse/ || $2 == "overlay"')
[ -z "$left" ] || fail "mounts left after every container was removed: $left"
echo "PASS: $(wc -l <"$log") mounts by $(basename "$program") ($fstype): run, podman mount, commit, rerun, --uidmap, force_mask"
