#!/usr/bin/env python3
"""Prints one line per entry below ROOT: path, type, mode, owner, size (files and links), content
sha256 and link count (files), link target and xattrs, sorted by path, so that two views of one image can be diffed."""
import hashlib
import os
import stat
import sys

root = sys.argv[1]
lines = []
for dirpath, dirnames, filenames in os.walk(root):
    for name in dirnames + filenames:
        path = os.path.join(dirpath, name)
        st = os.lstat(path)
        rel = os.path.relpath(path, root)
        kind = stat.S_IFMT(st.st_mode)
        line = [rel, oct(kind), oct(stat.S_IMODE(st.st_mode)), str(st.st_uid), str(st.st_gid)]
        if stat.S_ISREG(kind):
            with open(path, "rb") as f:
                line += [str(st.st_size), hashlib.sha256(f.read()).hexdigest(), "links=%d" % st.st_nlink]
        elif stat.S_ISLNK(kind):
            line += [str(st.st_size), os.readlink(path)]
        try:
            xattrs = sorted(os.listxattr(path, follow_symlinks=False))
        except OSError:
            xattrs = []
        for x in xattrs:
            line.append(x + "=" + os.getxattr(path, x, follow_symlinks=False).hex())
        lines.append(" ".join(line))
print("\n".join(sorted(lines)))
