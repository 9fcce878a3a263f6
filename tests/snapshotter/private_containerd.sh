# Sourced by tests/snapshotter/containerd_test.sh and bench/containerd_bench.sh: a private
# containerd (own config, root, state and sockets; never the system's) whose proxy plugin
# `layerfs` is a layerfs snapshotter, and a loopback docker-registry.

# containerd 1.6 keeps shim sockets, ctr's fifos and runc's state under /run/containerd whatever
# its config says: stop_private_containerd removes what is left there (empty directories) when
# /run/containerd did not exist before this file was sourced.
if [ -d /run/containerd ]; then PRIVATE_CONTAINERD_KEEP_RUN=true; else PRIVATE_CONTAINERD_KEEP_RUN=false; fi

# private_containerd_config WORK SOCKET SNAPSHOTTER_SOCKET [cri]: prints containerd's
# config.toml. With cri, the CRI plugin (kubelet's image service) runs too, unpacking into the
# layerfs snapshotter, with registry hosts from WORK/certs.d/<host>/hosts.toml; it never
# starts a pod here (no CNI), and its streaming server listens on a free loopback port.
private_containerd_config() {
  local cri='"io.containerd.grpc.v1.cri", '
  [ "${4:-}" != cri ] || cri=""
  cat <<CFG
version = 2
root = "$1/root"
state = "$1/state"
disabled_plugins = [${cri}"io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$2"
[ttrpc]
  address = "$2.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$1/opt"
[proxy_plugins.layerfs]
  type = "snapshot"
  address = "$3"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "layerfs"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$1/cni/bin"
    conf_dir = "$1/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$1/certs.d"
CFG
}

# start_private_containerd WORK SOCKET SNAPSHOTTER_SOCKET [cri]: starts containerd in the background
# (log in WORK/containerd.log), sets CTRD_PID and waits until it lists the layerfs plugin as
# loaded (it answers on its socket while still loading plugins).
start_private_containerd() {
  private_containerd_config "$@" >"$1/config.toml"
  containerd --config "$1/config.toml" >"$1/containerd.log" 2>&1 &
  CTRD_PID=$!
  for _ in $(seq 200); do
    ctr -a "$2" plugins ls 2>/dev/null | grep -q 'io.containerd.snapshotter.v1 *layerfs .*ok' && return 0
    sleep 0.1
  done
  echo "containerd on $2 did not load the layerfs plugin: $(ctr -a "$2" plugins ls 2>&1 | grep snapshotter)" >&2
  return 1
}

# stop_private_containerd SOCKET: kills and removes every task and container (all namespaces), then containerd
# (CTRD_PID), and the registry (REG_PID) when there is one.
stop_private_containerd() {
  if [ -n "${CTRD_PID:-}" ]; then
    local n t
    for n in $(ctr -a "$1" namespaces ls -q 2>/dev/null); do
      for t in $(ctr -a "$1" -n "$n" tasks ls -q 2>/dev/null); do ctr -a "$1" -n "$n" tasks kill -s KILL "$t" >/dev/null 2>&1 || true; done
      sleep 0.5
      for t in $(ctr -a "$1" -n "$n" containers ls -q 2>/dev/null); do
        ctr -a "$1" -n "$n" tasks rm -f "$t" >/dev/null 2>&1 || true
        ctr -a "$1" -n "$n" containers rm "$t" >/dev/null 2>&1 || true
      done
    done
    kill -TERM "$CTRD_PID" 2>/dev/null && wait "$CTRD_PID" 2>/dev/null || true
    CTRD_PID=""
  fi
  [ -z "${REG_PID:-}" ] || { kill "$REG_PID" 2>/dev/null; wait "$REG_PID" 2>/dev/null || true; }
  REG_PID=""
  $PRIVATE_CONTAINERD_KEEP_RUN || find /run/containerd -depth -type d -empty -delete 2>/dev/null || true
}

# start_loopback_registry DIR: a docker-registry on a free 127.0.0.1 port storing in DIR; sets
# REG_PORT and REG_PID and waits until it accepts connections.
start_loopback_registry() {
  REG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$1"
  cat >"$1.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $1}}
http: {addr: 127.0.0.1:$REG_PORT, secret: layerfs-test}
YML
  docker-registry serve "$1.yml" >"$1.log" 2>&1 &
  REG_PID=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$REG_PORT") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "docker-registry did not listen on 127.0.0.1:$REG_PORT" >&2
  return 1
}
