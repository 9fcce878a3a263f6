#!/usr/bin/env python3
"""make_rich_image.py OUT.tar: writes an OCI archive of a two-layer image "docker.io/library/rich:1"
with what an unpack must keep: hard links, user xattrs, a symlink, an owned 0700 directory, a
setuid file, an opaque directory (.wh..wh..opq) and a whiteout (.wh.NAME) in the top layer. Prints the image's chain ID (the name containerd commits its top layer under)."""
import hashlib
import io
import json
import sys
import tarfile

MTIME = 1700000000


def entry(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, link="", xattrs=None):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, gid, MTIME
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    if xattrs:
        info.pax_headers = {"SCHILY.xattr." + k: v for k, v in xattrs.items()}
    return info, (io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def layer(entries):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, data)
    return out.getvalue()


base = layer([
    entry("d/", tarfile.DIRTYPE, mode=0o755),
    entry("d/a", data=b"a"),
    entry("d/b", data=b"b"),
    entry("x", data=b"shared bytes", xattrs={"user.test.one": "one"}),
    entry("x2", tarfile.LNKTYPE, link="x"),
    entry("gone", data=b"deleted above"),
    entry("private/", tarfile.DIRTYPE, mode=0o700, uid=1000, gid=1000),
    entry("private/key", data=b"k", mode=0o600, uid=1000, gid=1000),
    entry("suid", data=b"#!/bin/sh\n", mode=0o4755),
])
top = layer([
    entry("d/", tarfile.DIRTYPE, mode=0o750),
    entry("d/.wh..wh..opq"),
    entry("d/c", data=b"c", xattrs={"user.test.two": "two"}),
    entry(".wh.gone"),
    entry("s", tarfile.SYMTYPE, link="x"),
    entry("y", data=b"linked twice"),
    entry("y2", tarfile.LNKTYPE, link="y"),
])

blobs = {}


def blob(data, media_type):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


layers = [blob(l, "application/vnd.oci.image.layer.v1.tar") for l in (base, top)]
config = blob(json.dumps({
    "architecture": "amd64", "os": "linux", "config": {},
    "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]},
}).encode(), "application/vnd.oci.image.config.v1+json")
manifest = blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "config": config, "layers": layers}).encode(),
                "application/vnd.oci.image.manifest.v1+json")
manifest["annotations"] = {"io.containerd.image.name": "docker.io/library/rich:1",
                           "org.opencontainers.image.ref.name": "1"}
index = {"schemaVersion": 2, "manifests": [manifest]}

with tarfile.open(sys.argv[1], "w") as out:
    files = {"oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
             "index.json": json.dumps(index).encode()}
    files.update({"blobs/sha256/" + d[7:]: b for d, b in blobs.items()})
    for name, data in files.items():
        info = tarfile.TarInfo(name)
        info.size, info.mtime = len(data), MTIME
        out.addfile(info, io.BytesIO(data))

chain = layers[0]["digest"]
for l in layers[1:]:
    chain = "sha256:" + hashlib.sha256((chain + " " + l["digest"]).encode()).hexdigest()
print(chain)
