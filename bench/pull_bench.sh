#!/bin/bash
# pull_bench: `layerfs pull` of a generated multi-layer image from a loopback registry against
# `skopeo copy docker://... oci:DIR` followed by `tar -xf` of each layer, in the same run.
# Rounds are interleaved (the order alternates) and each starts from an empty store / dir.
# Prints per-round times, the medians and the ratio skopeo+tar / layerfs (> 1: layerfs faster).
#
#   bench/pull_bench.sh [LAYERFS_BINARY]     env: ROUNDS (5), LAYERS (5), LAYER_MB (32)
set -euo pipefail

LAYERFS=${1:-${LAYERFS:-$(dirname "$0")/../build/tools/layerfs}}
ROUNDS=${ROUNDS:-5}
LAYERS=${LAYERS:-5}
LAYER_MB=${LAYER_MB:-32}
for tool in docker-registry skopeo python3 tar awk; do
  command -v "$tool" >/dev/null || { echo "pull_bench: $tool not installed" >&2; exit 1; }
done
[ -x "$LAYERFS" ] || { echo "pull_bench: no layerfs binary at $LAYERFS" >&2; exit 1; }

WORK=$(mktemp -d /tmp/layerfs-pullbench-XXXXXX)
REG_PID=
cleanup() {
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/registry.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $WORK/registry}}
http: {addr: 127.0.0.1:$PORT}
YML
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
  sleep 0.1
done

# A rootfs-like image: each layer holds LAYER_MB of files from 1 kB to 64 kB, half of each file
# random and half text, so gzip gets about 2x as on real images.
python3 - "$WORK/layout" "$LAYERS" "$LAYER_MB" <<'PY'
import gzip, hashlib, io, json, os, random, sys, tarfile
out, nlayers, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(f"{out}/blobs/sha256")
rnd = random.Random(2024)
text = b"".join(b"line %d of some configuration or source text\n" % i for i in range(4000))
def put(b):
    d = hashlib.sha256(b).hexdigest()
    open(f"{out}/blobs/sha256/{d}", "wb").write(b)
    return "sha256:" + d, len(b)
layers, diff_ids = [], []
for i in range(nlayers):
    bio, total, n = io.BytesIO(), 0, 0
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.PAX_FORMAT) as t:
        while total < mb * 1000000:
            size = rnd.randint(1000, 64000)
            data = rnd.randbytes(size // 2) + text[: size - size // 2]
            info = tarfile.TarInfo(f"layer{i}/dir{n // 100:03d}/file{n:05d}")
            info.size, info.mtime, info.mode = len(data), 1700000000, 0o644
            t.addfile(info, io.BytesIO(data))
            total += size
            n += 1
    raw = bio.getvalue()
    diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    digest, size = put(gzip.compress(raw, 6, mtime=0))
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size})
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                     "rootfs": {"type": "layers", "diff_ids": diff_ids},
                     "history": [{"created_by": f"layer {i}"} for i in range(nlayers)]}).encode()
cd, cs = put(config)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                       "layers": layers}).encode()
md, ms = put(manifest)
open(f"{out}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
           "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "latest"}}]},
          open(f"{out}/index.json", "w"))
print(f"image: {nlayers} layers, {sum(l['size'] for l in layers) / 1e6:.1f} MB compressed, "
      f"{nlayers * mb} MB of files")
PY
IMAGE=127.0.0.1:$PORT/bench/image:latest
skopeo copy -q --dest-tls-verify=false "oci:$WORK/layout:latest" "docker://$IMAGE"

now() { date +%s.%N; }
elapsed() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.3f\n", a - b }'; }

run_layerfs() {
  rm -rf "$WORK/store"
  local t0=$(now)
  "$LAYERFS" --root "$WORK/store" pull -q "$IMAGE" >/dev/null
  elapsed "$t0"
}

run_skopeo_tar() {
  rm -rf "$WORK/oci" "$WORK/trees"
  local t0=$(now)
  skopeo copy -q --src-tls-verify=false "docker://$IMAGE" "oci:$WORK/oci:latest" >/dev/null
  local i=0
  for digest in $(python3 -c '
import json, sys
idx = json.load(open(sys.argv[1] + "/index.json"))
m = json.load(open(sys.argv[1] + "/blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
print(" ".join(l["digest"][7:] for l in m["layers"]))' "$WORK/oci"); do
    mkdir -p "$WORK/trees/$i"
    tar -xf "$WORK/oci/blobs/sha256/$digest" -C "$WORK/trees/$i"
    i=$((i + 1))
  done
  elapsed "$t0"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

: >"$WORK/layerfs.times"
: >"$WORK/skopeo.times"
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then
    a=$(run_layerfs); b=$(run_skopeo_tar)
  else
    b=$(run_skopeo_tar); a=$(run_layerfs)
  fi
  echo "$a" >>"$WORK/layerfs.times"
  echo "$b" >>"$WORK/skopeo.times"
  printf 'round %d: layerfs pull %.2fs   skopeo copy + tar -x %.2fs\n' "$r" "$a" "$b"
done
ml=$(median <"$WORK/layerfs.times")
ms=$(median <"$WORK/skopeo.times")
printf 'median: layerfs pull %.2fs   skopeo copy + tar -x %.2fs   ratio (skopeo+tar / layerfs) %.2fx\n' \
  "$ml" "$ms" "$(awk -v a="$ms" -v b="$ml" 'BEGIN { print a / b }')"
