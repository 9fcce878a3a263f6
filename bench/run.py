#!/usr/bin/env python3
"""The layerfs bench harness: kernel overlayfs vs fuse-overlayfs vs layerfs (its store, and
`layerfs-overlay` on the overlay lower dirs) on the same layers.

Usage (as root):  bench/run.sh [--quick] [--out bench/results] [--rounds N] [--impls a,b,c]

Generates the layer sets (bench/layergen.py), mounts every implementation on exactly the same
layers, runs the workloads interleaved (A B C A B C ...) for N rounds, and writes results.md and
results.csv (median per implementation, ratio to kernel overlayfs) plus the layer-sharing figures.
Every mount it makes is unmounted on exit, also on Ctrl-C and on failure. Exit status: 0 when
every workload ran, 1 on any failure. See bench/README.md for what each workload does.
"""

import argparse
import csv
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BIG_COPY_UP = "first write to the big file (cold cache)"
BIG_COPY_UP_NO_SYNC = "first write to the big file (cold cache), no fsync (volatile / fsync=0)"
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import layergen  # noqa: E402


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


def run(cmd, cwd=None, check=True, timeout=600, env=None):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       env=None if env is None else {**os.environ, **env})
    if check and p.returncode != 0:
        raise BenchError(f"{' '.join(map(str, cmd))}: exit {p.returncode}: {(p.stderr or p.stdout).strip()[:500]}")
    return p


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def meminfo_kib(field):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise BenchError(f"/proc/meminfo has no {field}")


def proc_status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return None


def proc_pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, PermissionError):
        pass
    return None


def du_bytes(path):
    return int(run(["du", "-sb", path]).stdout.split()[0])


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def mounts_under(prefix):
    prefix = os.path.realpath(prefix) + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p.startswith(prefix)]


def daemon_pid(mnt):
    """The process serving a FUSE mount: the one whose argv holds the mount point."""
    want = os.path.realpath(mnt).encode()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if any(os.path.realpath(a) == want for a in args if a.startswith(b"/")):
            return int(d)
    return None


# ---- implementations ------------------------------------------------------------------------

class Handle:
    def __init__(self, impl, mnt, upper, scratch, pid=None, name=None):
        self.impl, self.mnt, self.upper, self.scratch, self.pid, self.name = impl, mnt, upper, scratch, pid, name


class Impl:
    """One union filesystem. mount() returns once the mount answers; unmount() removes it all."""
    name = ""
    is_fuse = True
    no_sync_option = None  # the mount option that skips fsync at copy-up (overlay's volatile), if any
    stats_bin = None       # a layerfs binary whose `stats` reads this mount's FUSE request counts

    def __init__(self, h):
        self.h = h  # the harness: data manifest, work dirs, mount registry

    def prepare(self):
        pass

    def forget_cache(self, key):
        """Makes the next mount of image `key` a first mount (no cached merged index)."""

    def _dirs(self):
        scratch = self.h.new_scratch(self.name)
        mnt, upper, work = (os.path.join(scratch, d) for d in ("mnt", "upper", "work"))
        for d in (mnt, upper, work):
            os.makedirs(d)
        return scratch, mnt, upper, work

    def unmount(self, handle):
        self._unmount(handle)
        if handle.pid:
            wait_gone(handle.pid)
        self.h.registry.pop(handle.mnt, None)
        shutil.rmtree(handle.scratch, ignore_errors=True)

    def _unmount(self, handle):
        run(["umount", handle.mnt])


def wait_gone(pid, timeout=10):
    end = time.time() + timeout
    while time.time() < end and os.path.exists(f"/proc/{pid}"):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[1].startswith("Z"):
                    return
        except OSError:
            return
        time.sleep(0.005)


class KernelOverlay(Impl):
    name = "kernel"
    is_fuse = False
    no_sync_option = "volatile"

    def mount(self, key, extra=""):
        lowers = self.h.images[key]["lower"]
        scratch, mnt, upper, work = self._dirs()
        # Relative lower paths (cwd = their common parent) keep 128 layers within the one page
        # that mount(2) accepts for options.
        parent = os.path.dirname(lowers[0])
        if any(os.path.dirname(l) != parent for l in lowers):
            parent = os.path.commonpath(lowers)
        rel = ":".join(os.path.relpath(l, parent) for l in reversed(lowers))
        self.h.registry[mnt] = (self, None)
        run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={rel},upperdir={upper},workdir={work}{extra}", mnt],
            cwd=parent)
        return Handle(self, mnt, upper, scratch)


class FuseOverlayfs(Impl):
    name = "fuse-overlayfs"
    no_sync_option = "fsync=0"

    def mount(self, key, extra=""):
        lowers = self.h.images[key]["lower"]
        scratch, mnt, upper, work = self._dirs()
        self.h.registry[mnt] = (self, None)
        run(["fuse-overlayfs", "-o", f"lowerdir={':'.join(reversed(lowers))},upperdir={upper},workdir={work}{extra}", mnt])
        wait_mounted(mnt)
        return Handle(self, mnt, upper, scratch, pid=daemon_pid(mnt))


class LayerfsOverlay(Impl):
    """`layerfs overlay` (issue 7): layerfs's engine on the same overlay dirs as the references,
    called as podman calls it: the `layerfs-overlay` name next to the binary, fuse-overlayfs's
    arguments (`layerfs overlay` when that name is absent)."""
    name = "layerfs-overlay"
    no_sync_option = "fsync=0"

    def __init__(self, h, binary):
        super().__init__(h)
        alias = os.path.join(os.path.dirname(binary), "layerfs-overlay")
        self.cmd = [alias] if os.access(alias, os.X_OK) else [binary, "overlay"]
        self.stats_bin = binary
        # The merged indexes of the lower stacks (fs/index/overlay_index_cache.h), kept between
        # mounts as podman's daemons keep them; forget_cache empties it for a first mount.
        self.index_cache = os.path.join(h.work, "overlay-index-cache")
        self.env = {"LAYERFS_INDEX_CACHE": self.index_cache}

    def forget_cache(self, key):
        shutil.rmtree(self.index_cache, ignore_errors=True)

    def prepare(self):
        p = run([*self.cmd, "--help"], check=False)
        if p.returncode != 0:
            raise BenchError(f"{' '.join(self.cmd)} --help failed (is `layerfs overlay` built?): "
                             f"{(p.stderr or p.stdout).strip()[:300]}")

    def mount(self, key, extra=""):
        lowers = self.h.images[key]["lower"]
        scratch, mnt, upper, work = self._dirs()
        self.h.registry[mnt] = (self, None)
        run([*self.cmd, "-o", f"lowerdir={':'.join(reversed(lowers))},upperdir={upper},workdir={work}{extra}", mnt],
            env=self.env)
        wait_mounted(mnt)
        return Handle(self, mnt, upper, scratch, pid=daemon_pid(mnt))


def wait_mounted(mnt, timeout=10):
    end = time.time() + timeout
    while not is_mounted(mnt):
        if time.time() > end:
            raise BenchError(f"{mnt}: not mounted after {timeout}s")
        time.sleep(0.002)


class Layerfs(Impl):
    name = "layerfs"
    no_sync_option = "volatile"

    env = None  # for the CLI and the daemons it starts (LAYERFS_IO_URING, LAYERFS_PASSTHROUGH)

    def __init__(self, h, binary, store):
        super().__init__(h)
        self.bin, self.store, self.seq = binary, store, 0
        self.stats_bin = binary

    def cli(self, *args, check=True, timeout=600):
        return run([self.bin, "--root", self.store, *args], check=check, timeout=timeout, env=self.env)

    def prepare(self):
        """Loads every image archive into the bench store (untimed)."""
        os.makedirs(self.store, exist_ok=True)
        have = self.cli("images").stdout
        for key, img in self.h.images.items():
            if img["tag"].split(":")[0] not in have:
                log(f"layerfs load {os.path.basename(img['archive'])}")
                self.cli("load", "-i", img["archive"], timeout=1800)

    def forget_cache(self, key):
        shutil.rmtree(os.path.join(self.store, "chains", chain_id(self.h.images[key]["diff_ids"])),
                      ignore_errors=True)

    def has_mount_command(self):
        if not hasattr(self, "_has_mount"):
            p = self.cli("mount", "--help", check=False)
            self._has_mount = p.returncode == 0 and "Usage: layerfs mount" in p.stdout
            if not self._has_mount:
                self.driver = find_driver()
                if not self.driver:
                    raise BenchError("layerfs has no `mount` command and bench/mount_driver is not built")
                self.h.results.notes.append(
                    "layerfs has no `mount` command yet: layerfs mounts were made by bench/mount_driver, "
                    "which calls the same RunMountDaemon (fs/mount/mount.h) that `layerfs mount` runs; "
                    "its mount time leaves out the CLI's image resolution")
        return self._has_mount

    def mount(self, key, extra=""):
        if not self.has_mount_command():
            if extra:
                raise BenchError(f"mount options {extra!r} need the `layerfs mount` command")
            return self.mount_with_driver(key)
        scratch = self.h.new_scratch(self.name)
        mnt = os.path.join(scratch, "mnt")
        os.makedirs(mnt)
        self.seq += 1
        name = f"bench-{self.name}-{os.getpid()}-{self.seq}"
        self.h.registry[mnt] = (self, name)
        options = ["-o", extra.lstrip(",")] if extra else []
        self.cli("mount", "--name", name, *options, self.h.images[key]["tag"], mnt)
        cid = self.container_id(name)
        upper = os.path.join(self.store, "containers", cid, "upper") if cid else None
        return Handle(self, mnt, upper, scratch, pid=daemon_pid(mnt) or self.record_pid(name), name=name)

    def mount_with_driver(self, key):
        scratch, mnt, upper, work = self._dirs()
        rfd, wfd = os.pipe()
        self.h.registry[mnt] = (self, None)
        proc = subprocess.Popen([self.driver, self.store, upper, work, mnt, str(wfd)]
                                + [f"sha256:{d}" for d in self.h.images[key]["diff_ids"]],
                                pass_fds=(wfd,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(wfd)
        with os.fdopen(rfd, "rb") as r:
            answer = r.read().decode(errors="replace")
        if answer != "R":
            proc.wait()
            raise BenchError(f"mount_driver {key}: {answer or proc.stderr.read().decode(errors='replace')}")
        h = Handle(self, mnt, upper, scratch, pid=proc.pid)
        h.proc = proc
        return h

    def container_id(self, name):
        cdir = os.path.join(self.store, "containers")
        for cid in os.listdir(cdir) if os.path.isdir(cdir) else []:
            try:
                with open(os.path.join(cdir, cid, "container.json")) as f:
                    if json.load(f).get("Name") == name:
                        return cid
            except (OSError, ValueError):
                continue
        return None

    def record_pid(self, name):
        cid = self.container_id(name)
        try:
            with open(os.path.join(self.store, "containers", cid, "container.json")) as f:
                return json.load(f).get("daemon_pid") or None
        except (OSError, ValueError, TypeError):
            return None

    def _unmount(self, handle):
        if getattr(handle, "proc", None) or not handle.name:
            run(["umount", handle.mnt])
            if getattr(handle, "proc", None):
                handle.proc.wait(timeout=30)
            return
        self.cli("umount", handle.mnt)
        self.cli("rm", "-f", handle.name, check=False)


class NoOpenMounts:
    """Mixin: every mount with `-o no_open` (issue 14): files open and close without a FUSE request."""

    def mount(self, key, extra=""):
        return super().mount(key, ",no_open" + extra)


class LayerfsNoOpen(NoOpenMounts, Layerfs):
    name = "layerfs-noopen"


class LayerfsPassthrough(Layerfs):
    """layerfs built against libfuse >= 3.17 (issue 8; now `cmake --preset fuse318`): the kernel reads
    and writes the layer and upper files directly (FUSE passthrough). Same store as `layerfs`."""
    name = "layerfs-pt"
    env = {"LAYERFS_IO_URING": "off"}


class LayerfsPassthroughUring(LayerfsPassthrough):
    """The same build with FUSE over io_uring (docs/io-uring.md; needs enable_uring=Y)."""
    name = "layerfs-pt-uring"
    env = {"LAYERFS_IO_URING": "on"}

    def prepare(self):
        version = run([self.bin, "--version"]).stdout
        if "io_uring: yes (kernel: on)" not in version:
            raise BenchError(f"{self.name}: needs a build with io_uring and enable_uring=Y: {version.strip()}")
        super().prepare()


class LayerfsUring(LayerfsPassthroughUring):
    """The same build over io_uring without passthrough: every READ and WRITE through the daemon."""
    name = "layerfs-uring"
    env = {"LAYERFS_IO_URING": "on", "LAYERFS_PASSTHROUGH": "off"}


class LayerfsUringNoOpen(NoOpenMounts, LayerfsUring):
    """io_uring and `-o no_open` (which leaves passthrough off)."""
    name = "layerfs-uring-noopen"


# The columns of the libfuse 3.18 build (--layerfs-passthrough): passthrough with /dev/fuse,
# passthrough over io_uring, io_uring without passthrough, io_uring with no_open.
FAST_BUILD_IMPLS = {c.name: c for c in (LayerfsPassthrough, LayerfsPassthroughUring, LayerfsUring,
                                        LayerfsUringNoOpen)}


def chain_id(diff_ids):
    chain = "sha256:" + diff_ids[0]
    for d in diff_ids[1:]:
        chain = "sha256:" + hashlib.sha256(f"{chain} sha256:{d}".encode()).hexdigest()
    return chain.split(":")[1]


# ---- results --------------------------------------------------------------------------------

class Results:
    def __init__(self):
        self.rows = {}     # (group, metric) -> {"unit", "better", "values": {impl: [..]}}
        self.order = []
        self.notes = []
        self.request_mix = {}  # (metric, impl) -> {opcode: requests per operation}, last round
        self.checks = {}   # (metric, impl) -> digest, to show every mount served the same tree

    def add(self, group, metric, unit, better, impl, value):
        key = (group, metric)
        if key not in self.rows:
            self.rows[key] = {"unit": unit, "better": better, "values": {}}
            self.order.append(key)
        self.rows[key]["values"].setdefault(impl, []).append(value)

    def median(self, key, impl):
        vals = self.rows.get(key, {}).get("values", {}).get(impl)
        return statistics.median(vals) if vals else None


# ---- the harness ----------------------------------------------------------------------------

class Harness:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.work = os.path.abspath(args.work)
        self.out = os.path.abspath(args.out)
        self.registry = {}   # mount point -> (Impl, container name or None), for cleanup
        self.scratch_seq = 0
        self.results = Results()
        self.failures = []

    def new_scratch(self, impl_name):
        self.scratch_seq += 1
        d = os.path.join(self.work, "run", f"{impl_name}-{self.scratch_seq}")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        return d

    # -- setup --
    def setup(self):
        if os.geteuid() != 0:
            raise BenchError("run as root (kernel overlayfs mounts, drop_caches)")
        os.makedirs(self.work, exist_ok=True)
        self.sweep_stale()
        self.fsops = self.build_fsops()
        p = layergen.Params.quick() if self.quick else layergen.Params()
        log(f"generating layer sets under {self.work} (reused when present)")
        self.data = layergen.generate(self.work, p, log=log)
        self.images = self.data["images"]
        self.impls = []
        for name in self.args.impls.split(","):
            if name == "kernel":
                self.impls.append(KernelOverlay(self))
            elif name == "fuse-overlayfs":
                self.impls.append(FuseOverlayfs(self))
            elif name == "layerfs":
                binary = find_layerfs(self.args.layerfs)
                self.impls.append(Layerfs(self, binary, os.path.join(self.work, "store")))
            elif name == "layerfs-noopen":
                binary = find_layerfs(self.args.layerfs)
                self.impls.append(LayerfsNoOpen(self, binary, os.path.join(self.work, "store")))
            elif name == "layerfs-overlay":
                self.impls.append(LayerfsOverlay(self, find_layerfs(self.args.layerfs)))
            elif name in FAST_BUILD_IMPLS:
                binary = find_layerfs(self.args.layerfs_passthrough or os.path.join(REPO, "build-fuse318", "tools", "layerfs"))
                self.impls.append(FAST_BUILD_IMPLS[name](self, binary, os.path.join(self.work, "store")))
            else:
                raise BenchError(f"unknown implementation {name!r} (kernel, fuse-overlayfs, layerfs, layerfs-noopen, layerfs-overlay, "
                                 f"{', '.join(FAST_BUILD_IMPLS)})")
        for impl in self.impls:
            impl.prepare()
        self.job_tar, self.job_expect = self.make_job()

    def sweep_stale(self):
        for mnt in reversed(mounts_under(self.work)):
            log(f"unmounting stale {mnt}")
            run(["umount", "-l", mnt], check=False)
        shutil.rmtree(os.path.join(self.work, "run"), ignore_errors=True)

    def build_fsops(self):
        src = os.path.join(HERE, "fsops.cc")
        exe = os.path.join(self.work, "fsops")
        if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
            run(["g++", "-O2", "-std=c++20", "-o", exe, src])
        return exe

    def cleanup(self):
        for mnt, (impl, name) in reversed(list(self.registry.items())):
            if is_mounted(mnt):
                log(f"cleanup: unmounting {mnt}")
                try:
                    impl._unmount(Handle(impl, mnt, None, None, name=name))
                except (BenchError, OSError, subprocess.SubprocessError):
                    pass
            if is_mounted(mnt):
                run(["umount", "-l", mnt], check=False)
            if name:
                impl.cli("rm", "-f", name, check=False)
        self.registry.clear()
        shutil.rmtree(os.path.join(self.work, "run"), ignore_errors=True)

    def fsops_run(self, *args):
        p = run([self.fsops, *map(str, args)], timeout=1800)
        return json.loads(p.stdout)

    # -- one measurement helper --
    def with_mount(self, impl, key, fn, cold=False, extra=""):
        if cold:
            drop_caches()
        h = impl.mount(key, extra) if extra else impl.mount(key)
        try:
            return fn(h)
        finally:
            impl.unmount(h)

    def record(self, group, metric, unit, better, impl, value):
        self.results.add(group, metric, unit, better, impl, value)

    def request_counts(self, impl, mnt):
        """FUSE requests served so far by a layerfs mount, by opcode (`layerfs stats`, whose own
        read is not counted); None for the other implementations."""
        if not impl.stats_bin:
            return None
        p = run([impl.stats_bin, "stats", "--format", "json", mnt], check=False)
        return json.loads(p.stdout) if p.returncode == 0 else None  # None: built before `layerfs stats`

    def counted(self, impl, h, metric, unit, per, fn):
        """fn()'s result; for a layerfs mount also records the FUSE requests fn caused per
        operation (per(result) = how many operations fn did)."""
        before = self.request_counts(impl, h.mnt)
        r = fn()
        after = self.request_counts(impl, h.mnt) if before is not None else None
        if after is not None:
            n = per(r)
            delta = {op: (after[op] - before.get(op, 0)) / n for op in after if after[op] != before.get(op, 0)}
            self.record("requests", metric, f"requests per {unit}", "lower", impl.name, sum(delta.values()))
            self.results.request_mix[(metric, impl.name)] = delta
        return r

    # -- workloads: each runs one implementation once --
    def w_walk(self, impl):
        r = self.results

        def body(h):
            rss0 = proc_status_kib(h.pid, "VmRSS") if h.pid else None
            cold = self.counted(impl, h, "walk cold", "entry", lambda r: r["entries"],
                                lambda: self.fsops_run("walk", h.mnt))
            warm = self.counted(impl, h, "walk warm", "entry", lambda r: r["entries"],
                                lambda: self.fsops_run("walk", h.mnt))
            self.record("1 metadata walk", "walk cold", "s", "lower", impl.name, cold["seconds"])
            self.record("1 metadata walk", "walk warm", "s", "lower", impl.name, warm["seconds"])
            self.check_same("walk digest", impl.name, (cold["entries"], cold["digest"]))
            if h.pid:
                rss1 = proc_status_kib(h.pid, "VmRSS")
                self.record("9 daemon memory", "daemon VmRSS after full walk", "MiB", "lower", impl.name, rss1 / 1024)
                self.record("9 daemon memory", "VmRSS growth per entry walked", "B/entry", "lower", impl.name,
                            (rss1 - rss0) * 1024 / cold["entries"])
        self.with_mount(impl, "rootfs", body, cold=True)

    def w_readall(self, impl):
        def body(h):
            # data/ holds the big files of workloads 3 and 4; they would dominate this figure.
            cold = self.counted(impl, h, "read every file, cold", "file", lambda r: r["files"],
                                lambda: self.fsops_run("readall", h.mnt, "data"))
            warm = self.counted(impl, h, "read every file, warm", "file", lambda r: r["files"],
                                lambda: self.fsops_run("readall", h.mnt, "data"))
            mb = cold["bytes"] / 1e6
            self.record("2 read every file", f"{cold['files']} files, {mb:.0f} MB (all but data/), cold", "s", "lower",
                        impl.name, cold["seconds"])
            self.record("2 read every file", "read all warm", "s", "lower", impl.name, warm["seconds"])
            self.check_same("readall bytes", impl.name, (cold["files"], cold["bytes"]))
        self.with_mount(impl, "rootfs", body, cold=True)

    def w_seqread(self, impl):
        big = self.data["rootfs"]["big"]

        def body(h):
            f = os.path.join(h.mnt, big)
            cold = self.fsops_run("seqread", f)
            warm = self.fsops_run("seqread", f)
            gib = cold["bytes"] / 2**30
            self.record("3 sequential read", f"{gib:g} GiB file cold", "GB/s", "higher", impl.name,
                        cold["bytes"] / cold["seconds"] / 1e9)
            self.record("3 sequential read", f"{gib:g} GiB file warm", "GB/s", "higher", impl.name,
                        warm["bytes"] / warm["seconds"] / 1e9)
        self.with_mount(impl, "rootfs", body, cold=True)

    def w_seqread_host(self):
        """Context for the figures above: the same file read straight from its lower dir."""
        f = os.path.join(self.images["rootfs"]["lower"][0], self.data["rootfs"]["big"])
        drop_caches()
        cold = self.fsops_run("seqread", f)
        warm = self.fsops_run("seqread", f)
        gib = cold["bytes"] / 2**30
        self.record("3 sequential read", f"{gib:g} GiB file cold", "GB/s", "higher", "host ext4",
                    cold["bytes"] / cold["seconds"] / 1e9)
        self.record("3 sequential read", f"{gib:g} GiB file warm", "GB/s", "higher", "host ext4",
                    warm["bytes"] / warm["seconds"] / 1e9)

    def w_randread(self, impl):
        big = self.data["rootfs"]["big"]
        secs = 1 if self.quick else 2

        def body(h):
            f = os.path.join(h.mnt, big)
            tool = "fio" if shutil.which("fio") else "fsops"
            self.record("4 random 4 KiB reads", f"{tool} {secs}s from cold cache", "IOPS", "higher", impl.name,
                        self.rand_iops(f, secs))
            self.fsops_run("seqread", f)   # now the whole file is in the page cache
            self.record("4 random 4 KiB reads", f"{tool} {secs}s, file cached", "IOPS", "higher", impl.name,
                        self.rand_iops(f, secs))
        self.with_mount(impl, "rootfs", body, cold=True)

    def rand_iops(self, path, secs):
        if shutil.which("fio"):
            p = run(["fio", "--name=rand4k", f"--filename={path}", "--rw=randread", "--bs=4k",
                     "--ioengine=psync", f"--runtime={secs}", "--time_based", "--readonly",
                     "--invalidate=0", "--randseed=12345", "--output-format=json"], timeout=secs + 120)
            return json.loads(p.stdout[p.stdout.index("{"):])["jobs"][0]["read"]["iops"]
        r = self.fsops_run("randread", path, secs)
        return r["ops"] / r["seconds"]

    def w_copyup(self, impl):
        def body(h):
            lst = self.data["copyup_list"]
            if self.quick:   # 200 files are enough for a smoke test (each copy-up may fsync)
                with open(lst) as f:
                    lines = f.read().splitlines()[:200]
                lst = os.path.join(h.scratch, "copyup-quick.list")
                with open(lst, "w") as f:
                    f.write("\n".join(lines) + "\n")
            small = self.fsops_run("firstwrite", lst, h.mnt)
            self.record("5 copy-up", f"first write to {small['files']} lower files", "s", "lower", impl.name,
                        small["seconds"])
            self.big_copy_up(impl, h, BIG_COPY_UP)
        self.with_mount(impl, "rootfs", body)
        if impl.no_sync_option:   # overlay's volatile: no fsync of the copy (cp does none either)
            self.with_mount(impl, "rootfs", lambda h: self.big_copy_up(impl, h, BIG_COPY_UP_NO_SYNC),
                            extra="," + impl.no_sync_option)

    def big_copy_up(self, impl, h, metric):
        drop_caches()
        lst = os.path.join(h.scratch, "big.list")
        with open(lst, "w") as f:
            f.write(self.data["rootfs"]["big"] + "\n")
        r = self.fsops_run("firstwrite", lst, h.mnt)
        self.record("5 copy-up", metric, "s", "lower", impl.name, r["seconds"])

    def w_cp(self):
        """Reference for the big copy-up: cp of the same lower file on the same filesystem."""
        src = os.path.join(self.images["rootfs"]["lower"][0], self.data["rootfs"]["big"])
        dst = os.path.join(self.work, "run", "cp-copy.bin")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        for label, fsync in (("cp", False), ("cp+fsync", True)):
            drop_caches()
            t = time.perf_counter()
            run(["cp", "--reflink=auto", src, dst])
            if fsync:   # kernel overlayfs fsyncs every copied-up file (unless volatile)
                run(["sync", dst])
            seconds = time.perf_counter() - t
            self.record("5 copy-up", BIG_COPY_UP, "s", "lower", label, seconds)
            if not fsync:   # the fair reference for mounts that skip the copy's fsync
                self.record("5 copy-up", BIG_COPY_UP_NO_SYNC, "s", "lower", label, seconds)
            os.unlink(dst)

    def w_churn(self, impl):
        n = 2000 if self.quick else 10000

        def body(h):
            r = self.counted(impl, h, "create/write/unlink", "file", lambda r: n,
                             lambda: self.fsops_run("churn", os.path.join(h.mnt, "churn"), n, 4096))
            self.record("6 create/write/unlink", f"{n} files of 4 KiB", "s", "lower", impl.name, r["seconds"])
        self.with_mount(impl, "rootfs", body)

    def w_mount_rootfs(self, impl):
        """Mount time of the whole rootfs (issue 7: a 50k-entry rootfs of several layers must
        mount in well under a second): from dropped caches (layerfs: no cached merged index
        either), then once more with warm caches."""
        layers = len(self.images["rootfs"]["lower"])
        walked = self.results.checks.get("walk digest", {})
        if walked:
            what = f"rootfs ({next(iter(walked.values()))[0]:,} merged entries, {layers} layers)"
        else:   # --workloads without walk: count what the layers hold
            what = f"rootfs ({sum(self.data['rootfs']['entries_per_layer']):,} entries in {layers} layers)"
        impl.forget_cache("rootfs")
        drop_caches()
        t = time.perf_counter()
        h = impl.mount("rootfs")
        cold = time.perf_counter() - t
        impl.unmount(h)
        t = time.perf_counter()
        h = impl.mount("rootfs")
        warm = time.perf_counter() - t
        impl.unmount(h)
        self.record("8 mount time", f"{what} cold", "ms", "lower", impl.name, cold * 1000)
        self.record("8 mount time", f"{what} warm", "ms", "lower", impl.name, warm * 1000)

    def w_stack(self, impl, depth):
        key = f"stack{depth}"
        if (impl.name, depth) in self.refused:
            return
        try:
            impl.forget_cache(key)
            t = time.perf_counter()
            h = impl.mount(key)
            first = time.perf_counter() - t
        except BenchError as e:
            self.refused[(impl.name, depth)] = str(e)
            self.results.notes.append(f"{impl.name} refuses {depth} layers: {str(e)[-300:]}")
            log(f"{impl.name} refuses {depth} layers")
            return
        impl.unmount(h)
        t = time.perf_counter()
        h = impl.mount(key)
        cached = time.perf_counter() - t
        impl.unmount(h)
        self.record("8 mount time", f"L={depth} first mount", "ms", "lower", impl.name, first * 1000)
        self.record("8 mount time", f"L={depth} cached index", "ms", "lower", impl.name, cached * 1000)

        def body(h):
            lst = self.data["stack_list"]
            cold = self.counted(impl, h, f"lookup L={depth} cold", "stat", lambda r: r["paths"],
                                lambda: self.fsops_run("statlist", lst, h.mnt))
            warm = self.counted(impl, h, f"lookup L={depth} warm", "stat", lambda r: r["paths"],
                                lambda: self.fsops_run("statlist", lst, h.mnt))
            self.record("7 lookup vs depth", f"L={depth} cold", "us/stat", "lower", impl.name,
                        cold["seconds"] / cold["paths"] * 1e6)
            self.record("7 lookup vs depth", f"L={depth} warm", "us/stat", "lower", impl.name,
                        warm["seconds"] / warm["paths"] * 1e6)
        self.with_mount(impl, key, body, cold=True)

    def w_job(self, impl):
        def body(h):
            self.record("10 real job", "untar + make -j2 a 50-file C project", "s", "lower", impl.name,
                        self.counted(impl, h, "untar + make -j2", "job", lambda r: 1,
                                     lambda: self.job_in(os.path.join(h.mnt, "job"))))
        self.with_mount(impl, "rootfs", body)

    def job_in(self, dest):
        os.makedirs(dest)
        t = time.perf_counter()
        run(["tar", "xzf", self.job_tar, "-C", dest])
        run(["make", "-s", "-j2", "-C", os.path.join(dest, "proj")])
        secs = time.perf_counter() - t
        out = run([os.path.join(dest, "proj", "app")]).stdout
        if out != self.job_expect:
            raise BenchError(f"job in {dest}: program printed {out!r}, expected {self.job_expect!r}")
        return secs

    def make_job(self):
        """A generated 50-file C project (tar.gz) and the output its program must print."""
        base = os.path.join(self.work, "job")
        tar = os.path.join(base, "proj.tar.gz")
        src = os.path.join(base, "proj")
        shutil.rmtree(base, ignore_errors=True)
        os.makedirs(src)
        total = 0
        decls, calls = [], []
        for i in range(50):
            body = []
            for k in range(20):
                body.append(f"int f{i}_{k}(int x) {{ int s = {k}; for (int j = 0; j < x; j++) s += (j ^ {i}) % {k + 3}; return s; }}")
                decls.append(f"int f{i}_{k}(int x);")
                calls.append(f"  s += f{i}_{k}({i + k});")
                total += k + sum((j ^ i) % (k + 3) for j in range(i + k))
            with open(os.path.join(src, f"unit{i:02d}.c"), "w") as f:
                f.write('#include "proj.h"\n' + "\n".join(body) + "\n")
        with open(os.path.join(src, "proj.h"), "w") as f:
            f.write("#pragma once\n" + "\n".join(decls) + "\n")
        with open(os.path.join(src, "main.c"), "w") as f:
            f.write('#include <stdio.h>\n#include "proj.h"\nint main(void) {\n  long s = 0;\n'
                    + "\n".join(calls) + '\n  printf("%ld\\n", s);\n  return 0;\n}\n')
        with open(os.path.join(src, "Makefile"), "w") as f:
            f.write("SRCS := $(wildcard *.c)\nOBJS := $(SRCS:.c=.o)\nCFLAGS := -O0\n"
                    "app: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n%.o: %.c proj.h\n\t$(CC) $(CFLAGS) -c $< -o $@\n")
        run(["tar", "czf", tar, "-C", base, "proj"])
        shutil.rmtree(src)
        return tar, f"{total}\n"

    def check_same(self, what, impl, value):
        ref = self.results.checks.setdefault(what, {})
        ref[impl] = value
        if len(set(map(str, ref.values()))) > 1:
            raise BenchError(f"{what} differs between implementations: {ref}")

    # -- the rounds --
    def run_rounds(self):
        rounds = 1 if self.quick else self.args.rounds
        self.refused = {}
        workloads = [("walk", self.w_walk), ("mount", self.w_mount_rootfs), ("readall", self.w_readall),
                     ("seqread", self.w_seqread),
                     ("randread", self.w_randread), ("copyup", self.w_copyup), ("churn", self.w_churn),
                     ("job", self.w_job)]
        chosen = self.args.workloads.split(",") if self.args.workloads else None
        workloads = [w for w in workloads if chosen is None or w[0] in chosen]
        for rnd in range(1, rounds + 1):
            log(f"round {rnd}/{rounds}")
            # Interleaved, and each round starts with the next implementation (A B C, B C A, ...)
            # so that no implementation always runs right after the same neighbour.
            shift = (rnd - 1) % len(self.impls)
            order = self.impls[shift:] + self.impls[:shift]
            for wname, fn in workloads:
                for impl in order:
                    self.step(f"{wname} {impl.name}", fn, impl)
                if wname == "seqread":
                    self.step("seqread host", self.w_seqread_host)
                if wname == "copyup":
                    self.step("copyup cp", self.w_cp)
                if wname == "job":
                    self.step("job host", self.w_job_host)
            for depth in self.data["stack_depths"] if chosen is None or "stack" in chosen else []:
                for impl in order:
                    self.step(f"stack L={depth} {impl.name}", self.w_stack, impl, depth)

    def w_job_host(self):
        dest = os.path.join(self.work, "run", "host-job")
        shutil.rmtree(dest, ignore_errors=True)
        self.record("10 real job", "untar + make -j2 a 50-file C project", "s", "lower", "host ext4",
                    self.job_in(dest))
        shutil.rmtree(dest)

    def step(self, label, fn, *a):
        t = time.perf_counter()
        try:
            fn(*a)
        except BenchError as e:
            self.failures.append(f"{label}: {e}")
            log(f"FAILED {label}: {e}")
            if self.args.fail_fast:
                raise
        log(f"  {label}: {time.perf_counter() - t:.1f}s")

    # -- micro-benchmarks --
    def run_micro(self):
        exe = find_micro(self.args.micro)
        if not exe:
            self.results.notes.append("merged_index_bench not built (cmake -DLAYERFS_BUILD_BENCH=ON): no index figures")
            return
        min_time = "0.05" if self.quick else "0.5"
        p = run([exe, f"--benchmark_min_time={min_time}", "--benchmark_format=json"], timeout=600)
        doc = json.loads(p.stdout)
        g = "micro: merged index (Google Benchmark)"
        for b in doc["benchmarks"]:
            name = b["name"].replace("/real_time", "")
            unit = b.get("time_unit", "ns")
            # CPU time too: on a shared machine the wall time also counts waiting for a core.
            self.record(g, f"{name} wall", unit, "lower", "layerfs", b["real_time"])
            self.record(g, f"{name} cpu", unit, "lower", "layerfs", b["cpu_time"])
            for counter in ("bytes_per_entry", "file_bytes_per_entry"):
                if counter in b:
                    self.record(g, f"{name} {counter}", "B/entry", "lower", "layerfs", b[counter])
                    self.bytes_per_entry = max(getattr(self, "bytes_per_entry", 0), b[counter])
        self.results.notes.append(f"micro-benchmarks: {os.path.relpath(exe, REPO)}, "
                                  f"{doc['context'].get('num_cpus')} CPUs, library build {doc['context'].get('library_build_type')}")

    # -- layer sharing --
    def run_sharing(self):
        n = 5 if self.quick else 50
        for impl in self.impls:
            self.step(f"{n} containers {impl.name}", self.many_containers, impl, n)
        lf = [i for i in self.impls if isinstance(i, Layerfs)]
        if lf:
            self.step("10 images sharing a base", self.shared_images, lf[0])

    def many_containers(self, impl, n):
        shared = self.data["rootfs"]["shared"]
        handles = []
        try:
            for _ in range(n):
                handles.append(impl.mount("rootfs"))
            for i, h in enumerate(handles):
                with open(os.path.join(h.mnt, "etc", "hostname"), "w") as f:
                    f.write(f"container-{i}\n" * 200)
            drop_caches()
            cached0 = meminfo_kib("Cached")
            for h in handles:
                self.fsops_run("seqread", os.path.join(h.mnt, shared))
            cached1 = meminfo_kib("Cached")
            size = os.path.getsize(os.path.join(handles[0].mnt, shared))
            g = f"sharing: {n} containers of one image"
            self.record(g, "uppers on disk (du -sb, one 4 KiB write each)", "KiB", "lower", impl.name,
                        sum(du_bytes(h.upper) for h in handles if h.upper) / 1024)
            pids = [h.pid for h in handles if h.pid]
            if pids:
                self.record(g, "daemons' VmRSS total", "MiB", "lower", impl.name,
                            sum(proc_status_kib(p, "VmRSS") or 0 for p in pids) / 1024)
                self.record(g, "daemons' Pss total", "MiB", "lower", impl.name,
                            sum(proc_pss_kib(p) or 0 for p in pids) / 1024)
            elif impl.is_fuse:
                self.results.notes.append(f"{impl.name}: daemon pids not found; memory not measured")
            self.record(g, f"page cache after reading a {size >> 20} MiB lower file in each: Cached delta / file size",
                        "copies", "lower", impl.name, (cached1 - cached0) * 1024 / size)
            lower_file = self.lower_path(impl, shared)
            if lower_file and shutil.which("fincore"):
                res = int(run(["fincore", "--bytes", "--noheadings", "--output", "RES", lower_file]).stdout.split()[0])
                self.record(g, "fincore of the lower file (resident / size)", "copies", "lower", impl.name, res / size)
        finally:
            for h in handles:
                impl.unmount(h)

    def lower_path(self, impl, rel):
        if isinstance(impl, Layerfs):
            return os.path.join(impl.store, "layers", self.images["rootfs"]["diff_ids"][0], "tree", rel)
        return os.path.join(self.images["rootfs"]["lower"][0], rel)

    def shared_images(self, impl):
        store = os.path.join(self.work, "share-store")
        shutil.rmtree(store, ignore_errors=True)
        lf = Layerfs(self, impl.bin, store)
        os.makedirs(store)
        for key in self.data["sharing_images"]:
            lf.cli("load", "-i", self.images[key]["archive"])
        images = lf.cli("images").stdout
        df = lf.cli("system", "df").stdout
        du = du_bytes(store)
        g = f"sharing: {len(self.data['sharing_images'])} images sharing a base layer"
        self.results.sharing_text = {"images": images, "df": df, "du": du}
        logical = sum(parse_size(line.split()[-1]) or 0 for line in images.splitlines()[1:] if line.strip())
        self.record(g, "`layerfs images` SIZE column summed (logical)", "MB", "lower", "layerfs", logical / 1e6)
        df_size = parse_df_images_size(df)
        if df_size is not None:
            self.record(g, "`layerfs system df` Images SIZE (real)", "MB", "lower", "layerfs", df_size / 1e6)
        self.record(g, "`du -sb` of the store", "MB", "lower", "layerfs", du / 1e6)
        self.record(g, "`du -s -B1` of the store (allocated blocks)", "MB", "lower", "layerfs",
                    int(run(["du", "-s", "-B1", store]).stdout.split()[0]) / 1e6)
        for part in sorted(os.listdir(store)):
            if os.path.isdir(os.path.join(store, part)):
                self.record(g, f"`du -sb` of the store's {part}/", "MB", "lower", "layerfs",
                            du_bytes(os.path.join(store, part)) / 1e6)
        shutil.rmtree(store)

    # -- output --
    def write(self, started, elapsed):
        os.makedirs(self.out, exist_ok=True)
        names = [i.name for i in self.impls]
        write_csv(os.path.join(self.out, "results.csv"), self.results, names)
        md = render_md(self, names, started, elapsed)
        with open(os.path.join(self.out, "results.md"), "w") as f:
            f.write(md)
        log(f"wrote {self.out}/results.md and results.csv")


SIZE_RE = re.compile(r"^([0-9.]+)\s*([kKMGT]?i?B)$")


def parse_size(text):
    m = SIZE_RE.match(text.strip())
    if not m:
        return None
    unit = m.group(2)
    mult = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
            "KiB": 1024, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}.get(unit, 1)
    return float(m.group(1)) * mult


def parse_df_images_size(df):
    for line in df.splitlines():
        if line.lower().startswith("images"):
            sizes = [parse_size(t) for t in re.findall(r"[0-9.]+\s*[kKMGT]?i?B", line)]
            sizes = [s for s in sizes if s is not None]
            if sizes:
                return sizes[0]
    return None


def find_layerfs(explicit):
    cands = [explicit, os.environ.get("LAYERFS_BIN"),
             os.path.join(REPO, "build", "tools", "layerfs"), os.path.join(REPO, "build-bench", "tools", "layerfs"),
             shutil.which("layerfs")]
    for c in cands:
        if c and os.access(c, os.X_OK):
            return os.path.abspath(c)
    raise BenchError("layerfs binary not found (build it, or pass --layerfs PATH / LAYERFS_BIN)")


def find_driver():
    for c in (os.path.join(REPO, "build", "bench", "mount_driver"),
              os.path.join(REPO, "build-bench", "bench", "mount_driver")):
        if os.access(c, os.X_OK):
            return c
    return None


def find_micro(explicit):
    for c in (explicit, os.path.join(REPO, "build", "bench", "merged_index_bench"),
              os.path.join(REPO, "build-bench", "bench", "merged_index_bench")):
        if c and os.access(c, os.X_OK):
            return os.path.abspath(c)
    return None


def write_csv(path, res, names):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["workload", "metric", "unit", "better", "implementation", "runs", "median",
                    "ratio_to_kernel", "min", "max", "values"])
        for key in res.order:
            row = res.rows[key]
            kmed = res.median(key, "kernel")
            for impl, vals in row["values"].items():
                med = statistics.median(vals)
                ratio = med / kmed if kmed else ""
                w.writerow([key[0], key[1], row["unit"], row["better"], impl, len(vals), f"{med:.6g}",
                            f"{ratio:.4g}" if ratio != "" else "", f"{min(vals):.6g}", f"{max(vals):.6g}",
                            ";".join(f"{v:.6g}" for v in vals)])


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def machine_info(work):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    fs = run(["df", "-T", work]).stdout.splitlines()[-1].split()
    return {"nproc": os.cpu_count(), "kernel": platform.release(), "cpu": cpu,
            "mem": f"{meminfo_kib('MemTotal') / 2**20:.1f} GiB",
            "fs": f"{fs[1]} on {fs[0]} ({work})",
            "fuse-overlayfs": run(["fuse-overlayfs", "--version"], check=False).stdout.splitlines()[0]
            if shutil.which("fuse-overlayfs") else "absent"}


def render_md(h, names, started, elapsed):
    res = h.results
    m = machine_info(h.work)
    main_keys = [k for k in res.order if not k[0].startswith(("sharing", "micro", "requests"))]
    extra = [n for key in main_keys for n in res.rows[key]["values"] if n not in names]
    cols = names + sorted(set(extra))
    lines = [f"# layerfs bench results", "",
             f"Command: `bench/run.sh {' '.join(sys.argv[1:])}`  ",
             f"Started {started} UTC, took {elapsed / 60:.1f} min, {1 if h.quick else h.args.rounds} round(s), "
             f"workloads interleaved, each round starting with the next implementation ({' '.join(names)}, then "
             f"{' '.join(names[1:] + names[:1])}, ...).  ",
             f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem']} RAM, kernel {m['kernel']}, "
             f"store and layers on {m['fs']}, {m['fuse-overlayfs']}.", "",
             "Medians; `x kernel` = median / kernel overlayfs median (for s, ms, us: above 1 is slower; "
             "for GB/s and IOPS: below 1 is slower). Cold = `sync; echo 3 > /proc/sys/vm/drop_caches` "
             "and a fresh mount. Raw runs in results.csv.", ""]
    ratio_cols = [n for n in names if n != "kernel"]
    lines.append("| workload | metric | unit | " + " | ".join(cols) + " | "
                 + " | ".join(f"{n} x kernel" for n in ratio_cols) + " |")
    lines.append("|" + " --- |" * (3 + len(cols) + len(ratio_cols)))
    for key in main_keys:
        row = res.rows[key]
        kmed = res.median(key, "kernel")
        meds = [res.median(key, n) for n in cols]
        ratios = [(res.median(key, n) / kmed) if (kmed and res.median(key, n) is not None) else None
                  for n in ratio_cols]
        lines.append(f"| {key[0]} | {key[1]} | {row['unit']} | " + " | ".join(fmt(v) for v in meds) + " | "
                     + " | ".join(f"{r:.2f}" if r is not None else "-" for r in ratios) + " |")
    for prefix, title in (("sharing", "Layer sharing"), ("micro", "Micro-benchmarks of the merged index")):
        keys = [k for k in res.order if k[0].startswith(prefix)]
        if not keys:
            continue
        kcols = sorted({n for k in keys for n in res.rows[k]["values"]}, key=lambda n: (n not in names, n))
        lines += ["", f"## {title}", "", "| figure | metric | unit | " + " | ".join(kcols) + " |",
                  "|" + " --- |" * (3 + len(kcols))]
        for key in keys:
            lines.append(f"| {key[0]} | {key[1]} | {res.rows[key]['unit']} | "
                         + " | ".join(fmt(res.median(key, n)) for n in kcols) + " |")
    lines += request_table(res, names)
    lines += ["", "## Targets (issues 5 and 7)", ""] + targets(h) + [""]
    if res.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in res.notes] + [""]
    if getattr(res, "sharing_text", None):
        st = res.sharing_text
        lines += ["## Layer sharing: raw output", "", "```", "$ layerfs images", st["images"].rstrip(),
                  "$ layerfs system df", st["df"].rstrip(), f"$ du -sb STORE", f"{st['du']}", "```", ""]
    if h.failures:
        lines += ["## Failures", ""] + [f"- {f}" for f in h.failures] + [""]
    return "\n".join(lines)


def request_table(res, names):
    """FUSE requests per operation of each layerfs mount (median over rounds), with the opcodes
    that make them up (last round)."""
    keys = [k for k in res.order if k[0] == "requests"]
    cols = [n for n in names if any(n in res.rows[k]["values"] for k in keys)]
    if not keys:
        return []
    lines = ["", "## FUSE requests per operation", "",
             "Counted by the daemon (`layerfs stats MNT`, read before and after each timed run); medians, "
             "then the opcodes of the last round (requests per operation, those >= 0.01).", "",
             "| workload | unit | " + " | ".join(cols) + " |", "|" + " --- |" * (2 + len(cols))]
    for key in keys:
        cells = []
        for n in cols:
            mix = res.request_mix.get((key[1], n), {})
            ops = ", ".join(f"{op} {v:.2f}" for op, v in sorted(mix.items(), key=lambda kv: -kv[1]) if v >= 0.01)
            med = res.median(key, n)
            cells.append("-" if med is None else f"{med:.2f} ({ops})" if ops else f"{med:.2f}")
        lines.append(f"| {key[1]} | {res.rows[key]['unit']} | " + " | ".join(cells) + " |")
    return lines


def targets(h):
    res = h.results

    def med(group, metric_prefix, impl):
        for key in res.order:
            if key[0] == group and key[1].startswith(metric_prefix):
                return res.median(key, impl)
        return None

    out = ["| target | figure | verdict |", "| --- | --- | --- |"]

    def verdict(ok):
        return "n/a" if ok is None else ("met" if ok else "MISSED")

    lw, kw, fw = (med("1 metadata walk", "walk warm", n) for n in ("layerfs", "kernel", "fuse-overlayfs"))
    ok = None if None in (lw, kw, fw) else (lw <= 1.2 * kw and fw >= 3 * lw)
    out.append(f"| warm walk <= 1.2x kernel, >= 3x faster than fuse-overlayfs | "
               f"{ratio_text(lw, kw, 'kernel')}; fuse-overlayfs/layerfs {ratio_text(fw, lw, '')} | {verdict(ok)} |")
    depth = max(h.data["stack_depths"])
    lc, kc = med("7 lookup vs depth", f"L={depth} cold", "layerfs"), med("7 lookup vs depth", f"L={depth} cold", "kernel")
    ok = None if None in (lc, kc) else lc <= kc
    note = " (kernel refused this depth)" if ("kernel", depth) in h.refused else ""
    out.append(f"| cold lookup at L={depth} no slower than kernel | {fmt(lc)} vs {fmt(kc)} us/stat{note} | {verdict(ok)} |")
    for temp in ("cold", "warm"):
        ls, ks = None, None
        for key in res.order:
            if key[0] == "3 sequential read" and key[1].endswith(temp):
                ls, ks = res.median(key, "layerfs"), res.median(key, "kernel")
        ok = None if None in (ls, ks) else ls >= 0.8 * ks
        out.append(f"| sequential read ({temp}) >= 0.8x kernel | {fmt(ls)} vs {fmt(ks)} GB/s = "
                   f"{ratio_text(ls, ks, '')} | {verdict(ok)} |")
    lm = med("8 mount time", f"L={depth} cached", "layerfs")
    out.append(f"| mount with cached index, L={depth}, <= 20 ms | {fmt(lm)} ms | {verdict(None if lm is None else lm <= 20)} |")
    bpe = getattr(h, "bytes_per_entry", None)
    out.append(f"| index memory <= 128 B/entry | {fmt(bpe) + ' B/entry (micro-benchmark)' if bpe else 'see micro-benchmarks'}"
               f" | {verdict(None if bpe is None else bpe <= 128)} |")
    # Judged warm (the host has just unpacked or used the layers, as when podman starts a
    # container); a cold mount reads every lower inode from disk, which no eager walk does in 1 s.
    keys = {k[1].rsplit(" ", 1)[1]: k for k in res.order
            if k[0] == "8 mount time" and k[1].startswith("rootfs (")}
    lw, lc = (res.median(keys[t], "layerfs-overlay") if t in keys else None for t in ("warm", "cold"))
    tree = keys["warm"][1][:-len(" warm")] if "warm" in keys else "the rootfs"
    out.append(f"| issue 7: layerfs-overlay mounts {tree} in well under 1 s (<= 500 ms, warm caches) | "
               f"{fmt(lw)} ms warm, {fmt(lc)} ms cold | {verdict(None if lw is None else lw <= 500)} |")
    lcu, cp = (res.median(("5 copy-up", BIG_COPY_UP), n) for n in ("layerfs", "cp"))
    out.append(f"| copy-up of the big file <= 1.2x cp | {fmt(lcu)} s vs cp {fmt(cp)} s = {ratio_text(lcu, cp, '')} | "
               f"{verdict(None if None in (lcu, cp) else lcu <= 1.2 * cp)} |")
    vcu, cp = (res.median(("5 copy-up", BIG_COPY_UP_NO_SYNC), n) for n in ("layerfs", "cp"))
    out.append(f"| the same without the copy's fsync (layerfs mount -o volatile) <= 1.2x cp | {fmt(vcu)} s vs cp "
               f"{fmt(cp)} s = {ratio_text(vcu, cp, '')} | {verdict(None if None in (vcu, cp) else vcu <= 1.2 * cp)} |")
    return out


def ratio_text(a, b, what):
    if a is None or b is None or not b:
        return "-"
    return f"{a / b:.2f}x {what}".strip()


def main():
    ap = argparse.ArgumentParser(description="layerfs vs kernel overlayfs vs fuse-overlayfs")
    ap.add_argument("--quick", action="store_true", help="small sizes, 1 round (smoke test, < 2 min)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="where results.md/.csv go")
    ap.add_argument("--work", default="/var/tmp/layerfs-bench", help="generated layers, stores, mounts")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--impls", default="kernel,fuse-overlayfs,layerfs,layerfs-overlay")
    ap.add_argument("--layerfs", help="path of the layerfs binary (default: build/tools/layerfs)")
    ap.add_argument("--layerfs-passthrough", metavar="PATH",
                    help="a layerfs built against libfuse >= 3.17 (default build-fuse318/tools/layerfs): "
                         "adds the layerfs-pt column")
    ap.add_argument("--workloads", help="only these (walk,mount,readall,seqread,randread,copyup,churn,job,stack,micro)")
    ap.add_argument("--micro", help="merged_index_bench binary (default: build/bench/merged_index_bench)")
    ap.add_argument("--fail-fast", action="store_true")
    ap.add_argument("--no-sharing", action="store_true", help="skip the layer-sharing figures")
    args = ap.parse_args()
    if args.layerfs_passthrough and "layerfs-pt" not in args.impls.split(","):
        args.impls += ",layerfs-pt"
    if args.quick:
        args.work = args.work.rstrip("/") + "-quick"
    h = Harness(args)

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    started = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M")
    t0 = time.time()
    try:
        h.setup()
        h.run_rounds()
        if not args.workloads or "micro" in args.workloads.split(","):
            h.step("micro-benchmarks", h.run_micro)
        if not args.no_sharing:
            h.run_sharing()
        h.write(started, time.time() - t0)
    except (BenchError, KeyboardInterrupt) as e:
        h.failures.append(str(e))
        log(f"bench: {e}")
    finally:
        h.cleanup()
    if h.failures:
        log(f"bench: {len(h.failures)} failure(s)")
        for f in h.failures:
            log(f"  {f}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
