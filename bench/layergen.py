"""layergen: the layer sets of the bench harness, generated deterministically (python3 stdlib).

Every layer is first a list of Entry records; the same records are then materialised twice:
  * as overlay lower directories (whiteout = 0/0 character device, opaque directory =
    trusted.overlay.opaque "y"), which kernel overlayfs and fuse-overlayfs mount;
  * as OCI tar layers (whiteout = .wh.NAME, opaque = .wh..wh..opq) in docker-archive files,
    which `layerfs load` reads.
So all implementations serve byte-identical trees. File contents come from one seeded random
buffer, so a rerun with the same parameters produces the same bytes and the same digests.

Data sets (sizes from Params):
  rootfs      a rootfs-like tree (packages under usr/, etc/, var/lib/dpkg, symlinks) over
              `layers` layers; upper layers add packages, replace files, delete files and whole
              directories (whiteouts) and replace one directory (opaque). The bottom layer also
              holds data/big.bin (the sequential/random read and copy-up file) and
              data/shared.bin (the page-cache sharing file).
  stack       L layers: the bottom one holds 10k files d000..d099/f0000..f0099 (the lookup
              targets); each upper layer holds all 100 directories (so every lookup has to pass
              through every layer in a union filesystem that walks layers) and one file.
  sharing     one base layer and N small unique layers: N images sharing the base.
"""

import hashlib
import io
import json
import os
import random
import stat
import tarfile
from dataclasses import dataclass, field

EPOCH = 1700000000


@dataclass
class Params:
    rootfs_base_files: int = 36000   # files in the bottom rootfs layer (plus dirs, links)
    rootfs_upper_layers: int = 5     # layers above the bottom one
    rootfs_upper_files: int = 2600   # new files per upper layer
    big_bytes: int = 1 << 30
    shared_bytes: int = 100 << 20
    stack_depths: tuple = (1, 8, 32, 64, 128)
    stack_dirs: int = 100
    stack_files_per_dir: int = 100
    sharing_images: int = 10
    sharing_base_files: int = 2000

    @staticmethod
    def quick():
        return Params(rootfs_base_files=3000, rootfs_upper_layers=5, rootfs_upper_files=300,
                      big_bytes=64 << 20, shared_bytes=16 << 20, stack_depths=(1, 8),
                      stack_dirs=20, stack_files_per_dir=50, sharing_images=3,
                      sharing_base_files=200)

    def key(self):
        return hashlib.sha256(json.dumps(self.__dict__, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Entry:
    path: str                 # relative, no leading "/"
    kind: str                 # "f" file, "d" dir, "l" symlink, "w" whiteout
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    size: int = 0
    seed: int = 0
    target: str = ""
    opaque: bool = False


@dataclass
class Layer:
    name: str
    entries: list = field(default_factory=list)

    def finish(self):
        """Adds missing parent directories and sorts (parents first)."""
        have = {e.path for e in self.entries}
        for e in list(self.entries):
            parts = e.path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in have:
                    have.add(d)
                    self.entries.append(Entry(d, "d", 0o755))
        self.entries.sort(key=lambda e: e.path.split("/"))
        return self


# ---- contents ---------------------------------------------------------------------------

_POOL = random.Random(20261129).randbytes((4 << 20) + (1 << 20))
_CHUNK = 1 << 20


def content_chunks(seed, size):
    """Yields the deterministic bytes of a file, at most 1 MiB at a time."""
    done, k = 0, 0
    while done < size:
        n = min(_CHUNK, size - done)
        off = ((seed * 1000003 + k) * 2654435761) % (len(_POOL) - n)
        yield _POOL[off:off + n]
        done += n
        k += 1


class _ContentReader:
    """File-like reader over content_chunks (what tarfile.addfile needs: read(n))."""

    def __init__(self, seed, size):
        self._it = content_chunks(seed, size)
        self._buf = b""

    def read(self, n):
        while len(self._buf) < n:
            chunk = next(self._it, None)
            if chunk is None:
                break
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out


# ---- the data sets ------------------------------------------------------------------------

def _file_size(rng):
    r = rng.random()
    if r < 0.75:
        return rng.randint(100, 4096)
    if r < 0.99:
        return rng.randint(4096, 32768)
    return rng.randint(32768, 131072)


def _package(rng, layer, name, files, seed_base):
    """Adds one package's files: docs, a python module dir, binaries, dpkg records."""
    groups = [f"usr/share/doc/{name}", f"usr/lib/python3/dist-packages/{name}",
              f"usr/lib/{name}/modules", f"usr/share/{name}/data", f"usr/share/locale/{name}"]
    listed = []
    for i in range(files):
        g = groups[i % len(groups)]
        sub = f"/s{(i // 25) % 4}" if i >= 50 else ""
        p = f"{g}{sub}/file{i:04d}" + (".py" if "python" in g else "")
        layer.entries.append(Entry(p, "f", 0o644, size=_file_size(rng), seed=seed_base + i))
        listed.append(p)
    layer.entries.append(Entry(f"usr/bin/{name}", "f", 0o755, size=_file_size(rng), seed=seed_base + files))
    layer.entries.append(Entry(f"usr/sbin/{name}-helper", "l", 0o777, target=f"../bin/{name}"))
    layer.entries.append(Entry(f"var/lib/dpkg/info/{name}.list", "f", 0o644,
                               size=min(60000, 40 * len(listed)), seed=seed_base + files + 1))
    return listed


def rootfs_layers(p: Params):
    rng = random.Random(1)
    base = Layer("rootfs-0")
    for d in ["bin", "sbin", "lib", "tmp", "root", "home", "proc", "sys", "dev", "run", "etc",
              "var/log", "var/cache", "usr/local/bin", "data"]:
        base.entries.append(Entry(d, "d", 0o1777 if d == "tmp" else 0o755))
    for i in range(200):
        base.entries.append(Entry(f"etc/conf{i:03d}.conf", "f", 0o644, size=rng.randint(50, 3000), seed=i))
    base.entries.append(Entry("etc/shadow", "f", 0o640, gid=42, size=900, seed=7))
    base.entries.append(Entry("home/user/.profile", "f", 0o644, uid=1000, gid=1000, size=800, seed=8))
    base.entries.append(Entry("data/big.bin", "f", 0o644, size=p.big_bytes, seed=424242))
    base.entries.append(Entry("data/shared.bin", "f", 0o644, size=p.shared_bytes, seed=515151))
    per_pkg = 120
    pkgs = max(1, (p.rootfs_base_files - 200) // (per_pkg + 2))
    base_files = []
    for k in range(pkgs):
        base_files += _package(rng, base, f"pkg{k:04d}", per_pkg, 10_000 + k * 1000)
    layers = [base.finish()]
    base_files = [f for f in base_files if not _deleted_dir(f, p)]   # no edits inside removed dirs
    rng.shuffle(base_files)
    cursor = 0
    for n in range(1, p.rootfs_upper_layers + 1):
        up = Layer(f"rootfs-{n}")
        new_pkgs = max(1, p.rootfs_upper_files // (per_pkg + 2))
        for k in range(new_pkgs):
            _package(rng, up, f"up{n}pkg{k:03d}", per_pkg, 50_000_000 + n * 1_000_000 + k * 1000)
        take = max(4, p.rootfs_upper_files // 12)
        for path in base_files[cursor:cursor + take]:           # replaced with new contents
            up.entries.append(Entry(path, "f", 0o644, size=_file_size(rng), seed=90_000_000 + cursor))
            cursor += 1
        for path in base_files[cursor:cursor + take]:           # deleted
            up.entries.append(Entry(path, "w"))
            cursor += 1
        up.entries.append(Entry(f"usr/share/locale/pkg{n:04d}", "w"))          # whole dir deleted
        opq = f"usr/share/pkg{n + 10:04d}/data"                                 # dir replaced
        up.entries.append(Entry(opq, "d", 0o755, opaque=True))
        up.entries.append(Entry(f"{opq}/replaced.txt", "f", 0o644, size=500, seed=70_000 + n))
        up.entries.append(Entry(f"etc/layer{n}.conf", "f", 0o644, size=200, seed=80_000 + n))
        layers.append(up.finish())
    untouched = base_files[cursor:]
    return layers, untouched


def _deleted_dir(path, p: Params):
    for n in range(1, p.rootfs_upper_layers + 1):
        if path.startswith(f"usr/share/locale/pkg{n:04d}/") or path.startswith(f"usr/share/pkg{n + 10:04d}/data/"):
            return True
    return False


def stack_layers(p: Params):
    bottom = Layer("stack-0")
    targets = []
    for d in range(p.stack_dirs):
        for f in range(p.stack_files_per_dir):
            path = f"d{d:03d}/f{f:04d}"
            bottom.entries.append(Entry(path, "f", 0o644, size=64, seed=d * 10000 + f))
            targets.append(path)
    layers = [bottom.finish()]
    for n in range(1, max(p.stack_depths)):
        up = Layer(f"stack-{n}")
        for d in range(p.stack_dirs):
            up.entries.append(Entry(f"d{d:03d}", "d", 0o755))
        up.entries.append(Entry(f"d{n % p.stack_dirs:03d}/layer{n}.txt", "f", 0o644, size=32, seed=n))
        layers.append(up.finish())
    return layers, targets


def sharing_layers(p: Params):
    rng = random.Random(3)
    base = Layer("share-base")
    for i in range(p.sharing_base_files):
        base.entries.append(Entry(f"usr/lib/base/f{i:05d}", "f", 0o644, size=_file_size(rng), seed=3_000_000 + i))
    uniques = []
    for n in range(p.sharing_images):
        u = Layer(f"share-app{n}")
        for i in range(20):
            u.entries.append(Entry(f"app/{n}/f{i}", "f", 0o644, size=2048, seed=4_000_000 + n * 100 + i))
        uniques.append(u.finish())
    return base.finish(), uniques


# ---- materialisation: overlay lower dirs ----------------------------------------------------

def write_overlay_dir(layer: Layer, root):
    os.makedirs(root, exist_ok=True)
    dirs = []
    for e in layer.entries:
        full = os.path.join(root, e.path)
        if e.kind == "d":
            os.makedirs(full, exist_ok=True)
            if e.opaque:
                os.setxattr(full, "trusted.overlay.opaque", b"y")
            dirs.append(e)
            continue
        if e.kind == "f":
            with open(full, "wb") as f:
                for chunk in content_chunks(e.seed, e.size):
                    f.write(chunk)
        elif e.kind == "l":
            os.symlink(e.target, full)
        elif e.kind == "w":
            os.mknod(full, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        _set_meta(full, e)
    for e in reversed(dirs):          # children first, so their creation keeps our mtime
        _set_meta(os.path.join(root, e.path), e)
    _set_meta(root, Entry("", "d", 0o755))


def _set_meta(full, e: Entry):
    os.lchown(full, e.uid, e.gid)
    if e.kind != "l":
        os.chmod(full, e.mode)
    os.utime(full, (EPOCH, EPOCH), follow_symlinks=False)


# ---- materialisation: OCI tar layers in docker-archives -------------------------------------

class _HashingWriter(io.RawIOBase):
    def __init__(self, f):
        self.f, self.h = f, hashlib.sha256()

    def writable(self):
        return True

    def write(self, b):
        self.h.update(b)
        return self.f.write(b)


def write_tar_layer(layer: Layer, path):
    """Writes an uncompressed OCI layer tar; returns its sha256 hex (diff_id == blob digest)."""
    with open(path + ".tmp", "wb") as raw:
        hw = _HashingWriter(raw)
        with tarfile.open(fileobj=hw, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for e in layer.entries:
                _add_tar_entry(tar, e)
    os.rename(path + ".tmp", path)
    return hw.h.hexdigest()


def _add_tar_entry(tar, e: Entry):
    head, _, name = e.path.rpartition("/")
    prefix = head + "/" if head else ""
    if e.kind == "w":
        tar.addfile(_info(prefix + ".wh." + name, tarfile.REGTYPE, 0o644, e))
        return
    if e.kind == "d":
        tar.addfile(_info(e.path + "/", tarfile.DIRTYPE, e.mode, e))
        if e.opaque:
            tar.addfile(_info(e.path + "/.wh..wh..opq", tarfile.REGTYPE, 0o644, e))
    elif e.kind == "l":
        ti = _info(e.path, tarfile.SYMTYPE, 0o777, e)
        ti.linkname = e.target
        tar.addfile(ti)
    else:
        ti = _info(e.path, tarfile.REGTYPE, e.mode, e)
        ti.size = e.size
        tar.addfile(ti, _ContentReader(e.seed, e.size))


def _info(name, typ, mode, e: Entry):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = typ, mode, e.uid, e.gid, EPOCH
    ti.uname = ti.gname = ""
    return ti


def write_docker_archive(out_path, repo_tag, tar_paths, diff_ids):
    """A docker-archive (docker save format) with the given uncompressed layer tars."""
    config = {
        "architecture": "amd64", "os": "linux", "created": "2023-11-14T22:13:20Z",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": f"layergen layer {i}"}
                    for i in range(len(diff_ids))],
    }
    cfg = json.dumps(config, sort_keys=True).encode()
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    layer_names = [f"{d}/layer.tar" for d in diff_ids]
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": [repo_tag], "Layers": layer_names}]).encode()
    with tarfile.open(out_path + ".tmp", "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in ((cfg_name, cfg), ("manifest.json", manifest)):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime = len(data), EPOCH
            tar.addfile(ti, io.BytesIO(data))
        seen = set()
        for name, src in zip(layer_names, tar_paths):
            if name not in seen:
                seen.add(name)
                tar.add(src, arcname=name, recursive=False, filter=_fixed_mtime)
    os.rename(out_path + ".tmp", out_path)


def _fixed_mtime(ti):
    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = EPOCH, 0, 0, "", ""
    return ti


# ---- the whole generation ------------------------------------------------------------------

def _materialise(layers, name, base, log):
    """Overlay dir + tar of every layer; returns (dirs, tars, diff_ids), bottom first."""
    dirs, tars, ids = [], [], []
    for i, layer in enumerate(layers):
        d = os.path.join(base, "lower", name, str(i))
        t = os.path.join(base, "tar", f"{name}-{i}.tar")
        stamp = t + ".diffid"
        if not os.path.exists(stamp):
            if os.path.exists(d):
                _rmtree(d)
            write_overlay_dir(layer, d)
            os.makedirs(os.path.dirname(t), exist_ok=True)
            with open(stamp + ".tmp", "w") as f:
                f.write(write_tar_layer(layer, t))
            os.rename(stamp + ".tmp", stamp)
        with open(stamp) as f:
            ids.append(f.read().strip())
        dirs.append(d)
        tars.append(t)
    log(f"layergen: {name}: {len(layers)} layers ready")
    return dirs, tars, ids


def _rmtree(path):
    import shutil
    shutil.rmtree(path)


def generate(base, p: Params, log=print):
    """Generates (or reuses) every data set under base/<params key>/ and returns a manifest."""
    root = os.path.join(base, "data-" + p.key())
    os.makedirs(root, exist_ok=True)
    manifest_path = os.path.join(root, "manifest.json")
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            return json.load(f)
    out = {"root": root, "images": {}}
    rl, untouched = rootfs_layers(p)
    dirs, tars, ids = _materialise(rl, "rootfs", root, log)
    _image(out, root, "rootfs", "bench-rootfs:latest", dirs, tars, ids)
    out["rootfs"] = {"entries_per_layer": [len(l.entries) for l in rl],
                     "big": "data/big.bin", "shared": "data/shared.bin"}
    out["copyup_list"] = _write_list(root, "copyup.list",
                                     sorted(untouched[::max(1, len(untouched) // 1000)][:1000]))
    sl, targets = stack_layers(p)
    dirs, tars, ids = _materialise(sl, "stack", root, log)
    for depth in p.stack_depths:
        _image(out, root, f"stack{depth}", f"bench-stack{depth}:latest", dirs[:depth], tars[:depth], ids[:depth])
    out["stack_depths"] = list(p.stack_depths)
    out["stack_list"] = _write_list(root, "stack.list", targets)
    base_layer, uniques = sharing_layers(p)
    dirs, tars, ids = _materialise([base_layer] + uniques, "share", root, log)
    out["sharing_images"] = []
    for n in range(len(uniques)):
        pick = [0, n + 1]
        _image(out, root, f"share{n}", f"bench-share{n}:latest", [dirs[i] for i in pick],
               [tars[i] for i in pick], [ids[i] for i in pick])
        out["sharing_images"].append(f"share{n}")
    with open(manifest_path + ".tmp", "w") as f:
        json.dump(out, f, indent=1)
    os.rename(manifest_path + ".tmp", manifest_path)
    return out


def _image(out, root, key, tag, dirs, tars, ids):
    """Records one image: its overlay lower dirs and diff_ids (bottom first), tag, archive."""
    path = os.path.join(root, "archives", key + ".tar")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_docker_archive(path, tag, tars, ids)
    out["images"][key] = {"tag": tag, "lower": dirs, "diff_ids": ids, "archive": path}


def _write_list(root, name, lines):
    path = os.path.join(root, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path
