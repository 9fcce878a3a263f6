#!/usr/bin/env bash
# Rootless podman on a mount program, compared with fuse-overlayfs (issue 15).
#
# A test user with 65536 subordinate ids (made here, removed at exit) runs podman without root,
# as a new user of a Debian host would: uidmap's setuid newuidmap, runc, cgroupfs, no network,
# /dev/fuse mode 0666 (Debian's udev rule; this CI machine keeps it 0600, so the whole test runs
# in a private mount namespace where a 0666 node is bound over it: the host's node is never
# touched). The same scenario runs once with MOUNT_PROGRAM and once with fuse-overlayfs, each in
# its own store, and every line the containers print must be the same:
#   load, run (write, delete, chown of a file, a dir and a symlink), commit, rerun the commit;
#   --uidmap 0:1:1000 (the ids a container sees, chown of every file type);
#   --userns=keep-id; a force_mask store (containers/storage passes xattr_permissions=2).
# Then each program reads the force_mask container the other one wrote (same on-disk format).
#   Usage: rootless_podman_test.sh MOUNT_PROGRAM FSTYPE   (run as root)
# Exit 0 pass, 1 fail, 77 skip only when podman, runc, fuse-overlayfs or uidmap is not installed.
set -euo pipefail
program=${1:?usage: rootless_podman_test.sh MOUNT_PROGRAM FSTYPE}
fstype=${2:?usage: rootless_podman_test.sh MOUNT_PROGRAM FSTYPE}
here=$(cd "$(dirname "$0")" && pwd)
source_dir=$(cd "$here/../.." && pwd)

for tool in podman runc fuse-overlayfs newuidmap newgidmap useradd setpriv unshare; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "run as root (the test makes its own user)"
[ -x "$program" ] || fail "mount program $program does not exist (build it first)"
program=$(cd "$(dirname "$program")" && pwd)/$(basename "$program")
if [ -z "${LAYERFS_TEST_PRIVATE_NS:-}" ]; then
  # Every mount below (the /dev/fuse bind, podman's) belongs to this namespace and ends with it.
  LAYERFS_TEST_PRIVATE_NS=1 exec unshare -m --propagation private "$0" "$program" "$fstype"
fi

user=lfs-rootless-$$
work=$(mktemp -d /tmp/lfs-rlp.XXXXXX)  # short: podman refuses a runroot over 50 characters
chmod 0755 "$work"

cleanup() {
  local status=$?
  trap - EXIT
  [ "$status" -ne 77 ] || status=1
  if id "$user" >/dev/null 2>&1; then
    # podman's pause process and conmons keep the user namespace (and its FUSE mounts) alive:
    # end every process of the test user, by pid.
    for attempt in 1 2 3; do
      pids=$(ps -o pid= -u "$user" 2>/dev/null || true)
      [ -n "$pids" ] || break
      kill -KILL $pids 2>/dev/null || true
      sleep 1
    done
    userdel "$user" 2>/dev/null || true
  fi
  # userdel removes the subordinate ranges too; make sure, as a later run reuses the name space.
  sed -i "/^$user:/d" /etc/subuid /etc/subgid
  left=$(awk -v w="$work/" 'index($5, w) == 1 {print $5, $9}' /proc/self/mountinfo)
  if [ -n "$left" ]; then
    echo "FAIL: mounts left under $work: $left" >&2
    status=1
  fi
  # LAYERFS_TEST_OUTPUTS=DIR keeps what the containers printed, to look at after a failure.
  [ -z "${LAYERFS_TEST_OUTPUTS:-}" ] || cp "$work"/*.txt "$LAYERFS_TEST_OUTPUTS"/ 2>/dev/null || true
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# useradd gives a new user 65536 subordinate ids (login.defs SUB_UID_COUNT); where it is
# configured not to, the next free range is added as it would have.
useradd --no-create-home --home-dir "$work/home" --shell /bin/sh --user-group "$user"
for map in subuid subgid; do
  if ! grep -q "^$user:" /etc/$map; then
    first_free=$(awk -F: '{e = $2 + $3; if (e > m) m = e} END {print (m > 100000 ? m : 100000)}' /etc/$map)
    echo "$user:$first_free:65536" >>/etc/$map
  fi
done
mkdir -p "$work/home/tmp" "$work/run" "$work/image"
chown "$user:$user" "$work/home" "$work/run"
chmod 0700 "$work/run"

# Images: the sample (two layers, one whiteout) and a one-layer image whose entries have owners
# a --uidmap container cannot all map: /etc/mtab a symlink (as in Debian images), files, a
# directory, a fifo and symlinks owned by 1000 and 2000.
"$source_dir/samples/make-sample.sh" "$work/image" >/dev/null
ids=$work/image/ids
mkdir -p "$ids"/{bin,etc,tmp,root,srv/app,srv/other}
cp "$(command -v busybox)" "$ids/bin/busybox"
for applet in sh ls cat echo id stat chown chmod ln rm mkdir touch mkfifo readlink test find sort; do
  ln -s busybox "$ids/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$ids/etc/passwd"
printf 'root:x:0:\n' >"$ids/etc/group"
ln -s /proc/self/mounts "$ids/etc/mtab"
echo app >"$ids/srv/app/data"
ln -s data "$ids/srv/app/link"
echo other >"$ids/srv/other/data"
ln -s data "$ids/srv/other/link"
chmod 1777 "$ids/tmp"
chown -R -h 1000:1000 "$ids/srv/app"
chown -R -h 2000:2000 "$ids/srv/other"
# containers/storage cannot import a fifo into a rootless force_mask store (user.* xattrs are
# refused on special files), with either mount program: that store gets the image without it.
tar --numeric-owner -C "$ids" -cf "$work/image/ids-no-fifo.tar" .
mkfifo "$ids/srv/app/fifo"
chown 1000:1000 "$ids/srv/app/fifo"
tar --numeric-owner -C "$ids" -cf "$work/image/ids.tar" .
chmod -R a+rX "$work/image"

# One store per mount program, configured for the user alone (nothing in the host's config).
write_config() {  # write_config NAME PROGRAM [FORCE_MASK]
  local dir=$work/home/$1
  mkdir -p "$dir"/{root,tmp,networks}
  cat >"$dir/mount-program" <<EOF
#!/bin/sh
printf '%s\n' "\$*" >>"$dir/mount-program.log"
exec "$2" "\$@"
EOF
  chmod 755 "$dir/mount-program"
  cat >"$dir/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$dir/root"
runroot = "$work/run/$1"
[storage.options.overlay]
mount_program = "$dir/mount-program"
${3:+force_mask = \"$3\"}
EOF
  cat >"$dir/containers.conf" <<EOF
[engine]
events_logger = "file"
events_logfile_path = "$dir/events.log"
image_copy_tmp_dir = "$dir/tmp"
cgroup_manager = "cgroupfs"
runtime = "runc"
[containers]
netns = "none"
[network]
network_config_dir = "$dir/networks"
EOF
  echo 'unqualified-search-registries = []' >"$dir/registries.conf"
  echo '{"default": [{"type": "insecureAcceptAnything"}]}' >"$dir/policy.json"
}

# Runs as the test user: podman for store NAME (a fresh login environment each time).
as_user() {
  setpriv --reuid="$user" --regid="$user" --init-groups \
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$work/home" USER="$user" LOGNAME="$user" \
    XDG_RUNTIME_DIR="$work/run" TMPDIR="$work/home/tmp" "$@"
}
# --storage-opt replaces storage.conf's overlay options, so force_mask is repeated there.
force_mask_opt() {  # force_mask_opt STORE_DIR
  [[ $1 != *-fm ]] || echo "--storage-opt overlay.force_mask=0700"
}
pm() {  # pm NAME podman-args...
  local dir=$work/home/$1
  shift
  as_user env CONTAINERS_STORAGE_CONF="$dir/storage.conf" CONTAINERS_CONF="$dir/containers.conf" \
    CONTAINERS_REGISTRIES_CONF="$dir/registries.conf" \
    podman --root "$dir/root" --runroot "$work/run/${dir##*/}" --runtime runc --cgroup-manager=cgroupfs \
    --storage-driver=overlay --storage-opt "overlay.mount_program=$dir/mount-program" $(force_mask_opt "$dir") "$@"
}
run_opts=(--network=none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

# In a container: runs a change and prints whether it was allowed (both programs must agree).
try='try() { if "$@" 2>/dev/null; then echo "ok: $*"; else echo "refused: $*"; fi; }'
report='stat -c "%u:%g %a %F %n" /srv/app /srv/app/data /srv/app/link /srv/app/fifo /srv/other /srv/other/data /srv/other/link /etc/mtab'
fm_report='stat -c "%u:%g %a %F %n" /srv/app /srv/app/data /srv/app/link /srv/other /srv/other/data /srv/other/link /etc/mtab'

# The scenario, printed line by line: the output of every container, then nothing else.
scenario() {  # scenario STORE
  local s=$1
  echo "== load"
  pm "$s" load -q --signature-policy "$work/home/$s/policy.json" -i "$work/image/sample.tar" >/dev/null
  pm "$s" import -q "$work/image/ids.tar" localhost/ids:latest >/dev/null
  pm "$s" images --format '{{.Repository}}:{{.Tag}}' | sort
  echo "== run: write, delete, chown of a file, a dir, a symlink"
  pm "$s" run --name writer "${run_opts[@]}" localhost/ids:latest /bin/sh -c "
    $try
    id
    sed -n 's/^[0-9]* [0-9]* [0-9:]* \/ \/ .* - \([^ ]*\) .*/\1/p' /proc/self/mountinfo
    echo written > /root/new.txt
    try rm /srv/other/data
    try chown 1000:1000 /root/new.txt
    try chown 2000:2000 /srv/app
    try chown -h 3000:3000 /srv/app/link
    try chmod 600 /srv/app/data
    $report /root/new.txt 2>&1; true"
  echo "== commit, rerun"
  pm "$s" commit -q writer localhost/ids:changed >/dev/null
  pm "$s" run --rm "${run_opts[@]}" localhost/ids:changed /bin/sh -c "$report /root/new.txt 2>&1; cat /root/new.txt"
  echo "== --uidmap 0:1:1000"
  pm "$s" run --rm "${run_opts[@]}" --uidmap 0:1:1000 localhost/ids:latest /bin/sh -c "
    $try
    id
    $report 2>&1; true
    try chown -h 0:0 /etc/mtab
    try chown 999:999 /srv/app/data
    try chown -h 999:999 /srv/app/link
    try chown -h 0:0 /srv/other/link
    try chown 0:0 /srv/other/data
    try chown 0:0 /srv/other
    echo new > /tmp/new && stat -c '%u:%g %a %n' /tmp/new
    $report 2>&1; true"
  echo "== --userns=keep-id"
  pm "$s" run --rm "${run_opts[@]}" --userns=keep-id localhost/ids:latest /bin/sh -c "
    id -u; id -g
    $report 2>&1; true
    echo mine > /tmp/mine && stat -c '%u:%g %a %n' /tmp/mine; true"
  echo "== sample image: run the committed layers of a two-layer image"
  pm "$s" run --rm "${run_opts[@]}" localhost/sample:latest /bin/sh -c 'hello; ls /etc'
}

# A fifo's chown: fuse-overlayfs 1.10 answers EIO and leaves an empty regular file in the fifo's
# place, so this one is not compared; layerfs-overlay must change it like any other file.
fifo_scenario() {  # fifo_scenario STORE
  pm "$1" run --rm "${run_opts[@]}" localhost/ids:latest /bin/sh -c "
    $try
    try chown 2000:3000 /srv/app/fifo
    stat -c '%u:%g %a %F %n' /srv/app/fifo"
}

# force_mask: the real owners and modes live in xattrs, files on disk get the mask.
force_mask_scenario() {  # force_mask_scenario STORE
  local s=$1
  echo "== force_mask store: run (chmod, chown, mkdir), then the committed image"
  pm "$s" import -q "$work/image/ids-no-fifo.tar" localhost/ids:latest >/dev/null
  # Changes once; a rerun of the container (reread_fm_with) only reports.
  pm "$s" run --name fm "${run_opts[@]}" localhost/ids:latest /bin/sh -ec "
    if [ ! -e /root/new.txt ]; then
      echo written > /root/new.txt
      chmod 640 /root/new.txt
      chown 1000:2000 /root/new.txt
      mkdir -m 750 /srv/made
      chown 3000:3000 /srv/made
      chown -h 2000:2000 /srv/app/link
      chmod 604 /srv/app/data
    fi
    $fm_report /root/new.txt /srv/made 2>&1; true"
  pm "$s" commit -q fm localhost/ids:fm >/dev/null
  pm "$s" run --rm "${run_opts[@]}" localhost/ids:fm /bin/sh -c "$fm_report /root/new.txt /srv/made 2>&1; true"
}
# Runs container fm of store STORE again, its root mounted by PROGRAM this time: the upper
# the other program wrote must read the same.
reread_fm_with() {  # reread_fm_with STORE PROGRAM
  local dir=$work/home/$1
  as_user env CONTAINERS_STORAGE_CONF="$dir/storage.conf" CONTAINERS_CONF="$dir/containers.conf" \
    CONTAINERS_REGISTRIES_CONF="$dir/registries.conf" \
    podman --root "$dir/root" --runroot "$work/run/$1" --runtime runc --cgroup-manager=cgroupfs \
    --storage-driver=overlay --storage-opt "overlay.mount_program=$2" $(force_mask_opt "$dir") start -a fm
}

write_config layerfs "$program"
write_config fuse-overlayfs "$(command -v fuse-overlayfs)"
write_config layerfs-fm "$program" 0700
write_config fuse-overlayfs-fm "$(command -v fuse-overlayfs)" 0700
chown -R "$user:$user" "$work/home"

# This namespace began as a copy of every mount of the host, those of tests running beside this
# one included (the root podman test's container roots and shm mounts under /tmp). Copies held
# here, and locked ones in the user namespace rootless podman makes from this one, keep those
# busy for their owners ("unlinkat .../userdata/shm: device or resource busy" in
# podman_mount_program): drop them here (propagation is private: the host keeps its own).
awk '{print $5, $9}' /proc/self/mountinfo | awk 'index($1, "/tmp/") == 1 || index($1, "/var/tmp/") == 1 || $2 ~ /^fuse/ {print $1}' |
  sort -r | while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done

# /dev/fuse as a Debian host has it (mode 0666), in this private namespace only.
mknod "$work/fuse" c 10 229
chmod 0666 "$work/fuse"
mount --bind "$work/fuse" /dev/fuse
# Shared, as on a systemd host (rootless podman expects it), with peers in this namespace only.
mount --make-rshared /

fuse_overlayfs=$(command -v fuse-overlayfs)
for s in layerfs fuse-overlayfs; do
  echo "== scenario with $s as the mount program"
  # In the background so that set -e holds inside (it does not in a function called from ||).
  scenario "$s" >"$work/out-$s.txt" 2>"$work/err-$s.txt" &
  wait $! || { cat "$work/out-$s.txt" "$work/err-$s.txt" >&2; fail "scenario on $s"; }
  fifo_scenario "$s" >"$work/fifo-$s.txt" 2>&1 || { cat "$work/fifo-$s.txt" >&2; fail "fifo chown on $s"; }
  force_mask_scenario "$s-fm" >"$work/out-$s-fm.txt" 2>"$work/err-$s-fm.txt" &
  wait $! || { cat "$work/out-$s-fm.txt" "$work/err-$s-fm.txt" >&2; fail "force_mask scenario on $s"; }
done
echo "== both programs reread each force_mask container (a new mount of the upper each written)"
for writer in layerfs fuse-overlayfs; do
  for reader in "$program" "$fuse_overlayfs"; do
    out=$work/reread-$writer-by-$(basename "$reader").txt
    reread_fm_with "$writer-fm" "$reader" >"$out" 2>&1 || { cat "$out" >&2; fail "$reader rereads $writer's force_mask container"; }
  done
done

# The comparison: every container printed the same on both programs (the root's fstype aside).
same() {  # same WHAT EXPECTED_FILE ACTUAL_FILE
  diff -u --label "fuse-overlayfs: $1" --label "layerfs-overlay: $1" "$2" "$3" >&2 || fail "$1 differs"
}
sed -i "s/^$fstype\$/ROOT-FSTYPE/" "$work/out-layerfs.txt"
sed -i 's/^fuse\.fuse-overlayfs$/ROOT-FSTYPE/' "$work/out-fuse-overlayfs.txt"
grep -qx ROOT-FSTYPE "$work/out-layerfs.txt" || fail "the layerfs container's root is not a $fstype mount"
same "rootless scenario" "$work/out-fuse-overlayfs.txt" "$work/out-layerfs.txt"
expect_fifo="ok: chown 2000:3000 /srv/app/fifo
2000:3000 644 fifo /srv/app/fifo"
[ "$(cat "$work/fifo-layerfs.txt")" = "$expect_fifo" ] || fail "chown of a fifo on layerfs-overlay: $(cat "$work/fifo-layerfs.txt")"
# fuse-overlayfs 1.10 with force_mask loses an owner on chmod (it records the new mode with the
# owner of the file on disk, the daemon's 0:0), and the image podman commits from its upper
# shows the lower's mode (644) instead of the chmod's: /srv/app/data is compared only as each
# reread sees it, and layerfs must show owner and mode as the container set them.
grep -v ' /srv/app/data$' "$work/out-fuse-overlayfs-fm.txt" >"$work/fm-expected.txt"
grep -v ' /srv/app/data$' "$work/out-layerfs-fm.txt" >"$work/fm-actual.txt"
same "force_mask scenario (but /srv/app/data)" "$work/fm-expected.txt" "$work/fm-actual.txt"
expect_data="1000:1000 604 regular file /srv/app/data"
[ "$(grep -c -x "$expect_data" "$work/out-layerfs-fm.txt")" = 2 ] ||
  fail "force_mask: chmod 604 of /srv/app/data must keep its owner 1000:1000, live and committed: $(grep /srv/app/data "$work/out-layerfs-fm.txt")"
p=$(basename "$program")
for writer in layerfs fuse-overlayfs; do
  same "force_mask container written by $writer, reread" "$work/reread-$writer-by-fuse-overlayfs.txt" "$work/reread-$writer-by-$p.txt"
done
grep -q 'xattr_permissions=2' "$work/home/layerfs-fm/mount-program.log" ||
  fail "containers/storage did not pass xattr_permissions=2 for force_mask: $(cat "$work/home/layerfs-fm/mount-program.log")"
grep -q 'upperdir=' "$work/home/layerfs/mount-program.log" || fail "layerfs-overlay never mounted a container"

echo "--- what the containers printed (identical on fuse-overlayfs and layerfs-overlay):"
cat "$work/out-layerfs.txt" "$work/out-layerfs-fm.txt"
echo "--- chown of a fifo, layerfs-overlay then fuse-overlayfs (not compared):"
cat "$work/fifo-layerfs.txt" "$work/fifo-fuse-overlayfs.txt"
echo "--- force_mask containers reread (identical through either program):"
cat "$work/reread-layerfs-by-$p.txt" "$work/reread-fuse-overlayfs-by-$p.txt"

# No container left, and no mount: podman unmounted every container root, so no daemon of
# either mount program may still run (each exits when its mount goes).
for s in layerfs fuse-overlayfs layerfs-fm fuse-overlayfs-fm; do
  pm "$s" rm -a -f -t 0 >/dev/null
  [ -z "$(pm "$s" ps -a -q)" ] || fail "containers left in store $s"
done
for attempt in $(seq 50); do  # a daemon exits just after its unmount returns
  daemons=$(ps -o pid=,args= -u "$user" | grep -E "$p|fuse-overlayfs" || true)
  [ -n "$daemons" ] || break
  sleep 0.1
done
[ -z "$daemons" ] || fail "mount daemons still running after every container was removed: $daemons"
echo "PASS: rootless podman: $(cat "$work"/home/layerfs*/mount-program.log | wc -l) mounts by $(basename "$program"), output identical to fuse-overlayfs"
