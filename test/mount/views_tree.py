#!/usr/bin/env python3
"""A tree, its writers and its comparison, for test/mount/views_backup.sh.

  views_tree.py init DIR FILES           build the tree (FILES files)
  views_tree.py write DIR CTL ID WRITERS [--data]
                                         change writer ID's part of the
                                         tree until SIGTERM; pause while
                                         CTL/pause exists (see below);
                                         --data: only rewrite, truncate
                                         and append files
  views_tree.py compare MODEL DIR LABEL  is DIR exactly MODEL?
  views_tree.py views MNT [--empty]      print user.stablefs.views; with
                                         --empty, fail unless no view is listed

The tree: FILES files over about FILES/30 directories (top directories
dNNN, each with subdirectories sNNN), most of them small, a few up to
512 KiB; random modes and nanosecond mtimes; user.* xattrs on some files
and directories; symlinks (some dangling); hard-link pairs.

Writers: writer ID owns the top directories whose number is ID modulo
WRITERS, so writers never race on a name. Each loops over random
operations in its part: rewrite a range, truncate, append, create,
delete, rename a file (also to another of its directories), mkdir, rmdir,
rename a directory, chmod, utime, setxattr, removexattr, symlink, link.
Every operation is a completed system call (no buffering) when the next
begins. Pausing: before each operation a writer checks CTL/pause; while
it exists the writer holds CTL/paused.ID and does nothing; it removes
CTL/paused.ID when it resumes. A failing operation is an error (each
writer is alone in its part: ENOENT or EEXIST cannot happen): the writer
reports it and exits 1 at the end.

compare: names, file types, modes, owners, sizes, bytes, mtimes (not of
symlinks), symlink targets, user.* xattrs and which names are one inode.
Prints every difference (the first 60) and exits 1 if there is one.
"""
import errno
import hashlib
import json
import os
import random
import signal
import stat
import sys
import time

MODES = (0o644, 0o600, 0o640, 0o755, 0o444, 0o664)


def rand_size(rng):
    r = rng.random()
    if r < 0.80:
        return rng.randrange(0, 4096)
    if r < 0.99:
        return rng.randrange(4096, 32768)
    return rng.randrange(65536, 524288)


def rand_mtime_ns(rng):
    # 2001..2025, with nanoseconds
    return rng.randrange(10**9, 1750000000) * 10**9 + rng.randrange(10**9)


def init(d, files):
    rng = random.Random(1307)
    ndirs = max(4, files // 30)
    ntop = max(2, ndirs // 4)
    dirs = []
    for t in range(ntop):
        top = "d%03d" % t
        os.mkdir(os.path.join(d, top))
        dirs.append(top)
    for s in range(ndirs - ntop):
        sub = "d%03d/s%03d" % (s % ntop, s)
        os.mkdir(os.path.join(d, sub))
        dirs.append(sub)
    names = []
    for i in range(files):
        rel = "%s/f%05d" % (dirs[i % len(dirs)], i)
        path = os.path.join(d, rel)
        with open(path, "wb") as f:
            f.write(rng.randbytes(rand_size(rng)))
        if rng.random() < 0.10:
            os.setxattr(path, "user.tag", b"tag %d" % i)
            if rng.random() < 0.3:
                os.setxattr(path, "user.more", rng.randbytes(rng.randrange(1, 200)))
        os.chmod(path, rng.choice(MODES))
        os.utime(path, ns=(rand_mtime_ns(rng), rand_mtime_ns(rng)))
        names.append(rel)
    for i, rel in enumerate(names):
        r = rng.random()
        top = rel.split("/")[0]
        if r < 0.03:
            target = os.path.relpath(rng.choice(names), os.path.dirname(rel))
            if rng.random() < 0.2:
                target += ".dangling"
            os.symlink(target, os.path.join(d, rel + ".sym"))
        elif r < 0.05:
            other = os.path.join(d, top, "h%05d" % i)
            os.link(os.path.join(d, rel), other)
    for rel in dirs:
        if rng.random() < 0.1:
            os.setxattr(os.path.join(d, rel), "user.dir", b"dir " + rel.encode())
    # Directory mtimes last: the files above changed them.
    for rel in sorted(dirs, key=lambda r: -r.count("/")):
        os.utime(os.path.join(d, rel), ns=(rand_mtime_ns(rng), rand_mtime_ns(rng)))
    print("# tree: %d files, %d directories in %s" % (files, len(dirs), d))


class Writer:
    def __init__(self, d, ctl, wid, writers):
        self.d, self.ctl, self.wid = d, ctl, wid
        self.rng = random.Random(wid * 7919 + os.getpid())
        self.files, self.dirs, self.subdirs, self.links = [], [], [], []
        self.counts, self.errors, self.serial = {}, [], 0
        for top in sorted(os.listdir(d)):
            if top.startswith("d") and int(top[1:]) % writers == wid:
                self.scan(top)
        if not self.dirs:
            sys.exit("writer %d: no directory of its own in %s" % (wid, d))

    def scan(self, rel):
        self.dirs.append(rel)
        if rel.count("/"):
            self.subdirs.append(rel)
        with os.scandir(os.path.join(self.d, rel)) as it:
            for e in it:
                r = rel + "/" + e.name
                if e.is_dir(follow_symlinks=False):
                    self.scan(r)
                elif e.is_file(follow_symlinks=False):
                    self.files.append(r)
                elif e.is_symlink():
                    self.links.append(r)

    def p(self, rel):
        return os.path.join(self.d, rel)

    def new_name(self, prefix):
        self.serial += 1
        return "%s%d.%d" % (prefix, self.wid, self.serial)

    def a_file(self):
        return self.rng.choice(self.files) if self.files else None

    # --- operations: each returns False if it found nothing to work on ---
    def rewrite(self):
        f = self.a_file()
        if not f:
            return False
        fd = os.open(self.p(f), os.O_WRONLY)
        try:
            size = os.fstat(fd).st_size
            os.pwrite(fd, self.rng.randbytes(self.rng.randrange(1, 16384)),
                      self.rng.randrange(0, size + 1))
        finally:
            os.close(fd)
        return True

    def truncate(self):
        f = self.a_file()
        if not f:
            return False
        os.truncate(self.p(f), self.rng.randrange(0, 40000))
        return True

    def append(self):
        f = self.a_file()
        if not f:
            return False
        fd = os.open(self.p(f), os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, self.rng.randbytes(self.rng.randrange(1, 8192)))
        finally:
            os.close(fd)
        return True

    def create(self):
        rel = self.rng.choice(self.dirs) + "/" + self.new_name("new")
        fd = os.open(self.p(rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, self.rng.randbytes(rand_size(self.rng)))
        finally:
            os.close(fd)
        self.files.append(rel)
        return True

    def delete(self):
        f = self.a_file()
        if not f:
            return False
        os.unlink(self.p(f))
        self.files.remove(f)
        return True

    def rename(self):
        f = self.a_file()
        if not f:
            return False
        to = self.rng.choice(self.dirs) + "/" + self.new_name("mv")
        os.rename(self.p(f), self.p(to))
        self.files[self.files.index(f)] = to
        return True

    def mkdir(self):
        parent = self.rng.choice(self.dirs)
        if parent.count("/") > 3:
            return False
        rel = parent + "/" + self.new_name("nd")
        os.mkdir(self.p(rel), 0o755)
        self.dirs.append(rel)
        self.subdirs.append(rel)
        return True

    def rmdir(self):
        for rel in self.rng.sample(self.subdirs, min(5, len(self.subdirs))):
            if not os.listdir(self.p(rel)):
                os.rmdir(self.p(rel))
                self.dirs.remove(rel)
                self.subdirs.remove(rel)
                return True
        return False

    def rename_dir(self):
        if not self.subdirs:
            return False
        old = self.rng.choice(self.subdirs)
        new = old.rsplit("/", 1)[0] + "/" + self.new_name("rd")
        os.rename(self.p(old), self.p(new))

        def moved(r):
            return new + r[len(old):] if r == old or r.startswith(old + "/") else r
        self.files = [moved(r) for r in self.files]
        self.links = [moved(r) for r in self.links]
        self.dirs = [moved(r) for r in self.dirs]
        self.subdirs = [moved(r) for r in self.subdirs]
        return True

    def chmod(self):
        f = self.a_file()
        if not f:
            return False
        os.chmod(self.p(f), self.rng.choice(MODES))
        return True

    def utime(self):
        f = self.a_file()
        if not f:
            return False
        os.utime(self.p(f), ns=(rand_mtime_ns(self.rng), rand_mtime_ns(self.rng)))
        return True

    def setxattr(self):
        rel = self.a_file() if self.rng.random() < 0.8 else self.rng.choice(self.dirs)
        if not rel:
            return False
        os.setxattr(self.p(rel), "user.w%d" % self.rng.randrange(3),
                    self.rng.randbytes(self.rng.randrange(1, 100)))
        return True

    def removexattr(self):
        f = self.a_file()
        if not f:
            return False
        names = [n for n in os.listxattr(self.p(f)) if n.startswith("user.")]
        if not names:
            return False
        os.removexattr(self.p(f), self.rng.choice(names))
        return True

    def symlink(self):
        """Make a symlink, or remove one of those made (half the time)."""
        if self.links and self.rng.random() < 0.5:
            rel = self.links.pop(self.rng.randrange(len(self.links)))
            os.unlink(self.p(rel))
            return True
        f = self.a_file()
        if not f:
            return False
        rel = self.rng.choice(self.dirs) + "/" + self.new_name("sl")
        os.symlink(os.path.relpath(f, os.path.dirname(rel)), self.p(rel))
        self.links.append(rel)
        return True

    def link(self):
        f = self.a_file()
        if not f:
            return False
        rel = self.rng.choice(self.dirs) + "/" + self.new_name("hl")
        os.link(self.p(f), self.p(rel))
        self.files.append(rel)
        return True

    # As many names go as come (create + link = delete), so the tree
    # keeps its size.
    OPS = ("rewrite", "rewrite", "rewrite", "truncate", "append", "append",
           "create", "delete", "delete", "rename", "mkdir", "rmdir",
           "rename_dir", "chmod", "utime", "setxattr", "removexattr",
           "symlink", "link")
    # What a writer in SRC directly can do under a view: only changes of
    # a file's bytes are held by the kernel before they land (kernel-facts
    # K9), so only they can be kept for the view.
    DATA_OPS = ("rewrite", "rewrite", "truncate", "append")

    def pause_point(self):
        pause = os.path.join(self.ctl, "pause")
        if not os.path.exists(pause):
            return
        ack = os.path.join(self.ctl, "paused.%d" % self.wid)
        open(ack, "w").close()
        while os.path.exists(pause):
            time.sleep(0.005)
        os.unlink(ack)

    def run(self, stop, data_only=False):
        ops = self.DATA_OPS if data_only else self.OPS
        while not stop:
            self.pause_point()
            op = self.rng.choice(ops)
            try:
                if getattr(self, op)():
                    self.counts[op] = self.counts.get(op, 0) + 1
            except OSError as e:
                self.errors.append("%s: %s" % (op, e))
                if len(self.errors) > 20:
                    break
            time.sleep(0.01)    # leave the 2 CPUs to the backups too


def write(d, ctl, wid, writers, data_only):
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    w = Writer(d, ctl, wid, writers)
    w.run(stop, data_only)
    print("# writer %d: %d operations (%s)" % (
        wid, sum(w.counts.values()),
        ", ".join("%s %d" % kv for kv in sorted(w.counts.items()))))
    for e in w.errors[:20]:
        print("not ok: writer %d: %s" % (wid, e))
    return 1 if w.errors else 0


# --- comparison ---------------------------------------------------------

def describe(root):
    """rel -> attributes (links: the names of its inode; error: what failed)."""
    info, inodes = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in [None] + sorted(dirnames + filenames):
            path = dirpath if name is None else os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if rel in info:
                continue
            try:
                info[rel] = attributes(path, rel, inodes)
            except OSError as e:
                info[rel] = {"error": "%s: %s" % (e.strerror, e.filename)}
    for a in info.values():
        if "inode" in a:
            a["links"] = sorted(inodes[a.pop("inode")])
    return info


def attributes(path, rel, inodes):
    """What compare() compares of path; its inode noted in inodes."""
    st = os.lstat(path)
    a = {"type": stat.S_IFMT(st.st_mode), "mode": "%04o" % stat.S_IMODE(st.st_mode),
         "owner": "%d:%d" % (st.st_uid, st.st_gid)}
    if stat.S_ISLNK(st.st_mode):
        a["target"] = os.readlink(path)
    else:
        a["mtime"] = st.st_mtime_ns
        a["xattrs"] = {n: hashlib.blake2b(os.getxattr(path, n)).hexdigest()[:16]
                       for n in sorted(os.listxattr(path)) if n.startswith("user.")}
    if stat.S_ISREG(st.st_mode):
        a["size"] = st.st_size
        h = hashlib.blake2b()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        a["bytes"] = h.hexdigest()[:32]
    if not stat.S_ISDIR(st.st_mode):
        inodes.setdefault((st.st_dev, st.st_ino), set()).add(rel)
        a["inode"] = (st.st_dev, st.st_ino)
    return a


def compare(model, d, label):
    start = time.monotonic()
    want, got = describe(model), describe(d)
    diffs = []
    for rel in sorted(set(want) | set(got)):
        if rel not in got:
            diffs.append("%s: missing" % rel)
        elif rel not in want:
            diffs.append("%s: not in the model (%s)" % (
                rel, "directory" if got[rel].get("type") == stat.S_IFDIR else "file"))
        elif "error" in want[rel] or "error" in got[rel]:
            diffs.append("%s: error %s, the model's %s" % (
                rel, got[rel].get("error", "none"), want[rel].get("error", "none")))
        else:
            for k in sorted(set(want[rel]) | set(got[rel])):
                w, g = want[rel].get(k), got[rel].get(k)
                if w != g:
                    diffs.append("%s: %s %s, the model's %s" % (rel, k, g, w))
    files = sum(1 for a in want.values() if a.get("type") == stat.S_IFREG)
    if diffs:
        for line in diffs[:60]:
            print("not ok: %s: %s" % (label, line))
        kinds = {}
        for line in diffs:
            k = line.split(": ", 1)[1].split(" ", 1)[0]
            if k == "error":
                k = "error " + line.split(": ", 2)[1].split(" ", 1)[1]
            kinds[k] = kinds.get(k, 0) + 1
        print("not ok: %s differs from the model in %d ways (%s), %d entries, %d files"
              % (label, len(diffs), ", ".join("%s %d" % kv for kv in sorted(kinds.items())),
                 len(want), files))
        return 1
    print("ok: %s equals the model: %d entries, %d files, bytes, modes, owners, "
          "mtimes, xattrs, symlinks, hard links (%.0f s)"
          % (label, len(want), files, time.monotonic() - start))
    return 0


def views(mnt, empty):
    try:
        raw = os.getxattr(mnt, "user.stablefs.views")
    except OSError as e:
        print("not ok: getxattr %s user.stablefs.views: %s" % (mnt, e))
        return 1
    print("# user.stablefs.views: %s" % raw.decode(errors="replace"))
    try:
        listed = json.loads(raw)["views"]
    except (ValueError, KeyError) as e:
        print("not ok: user.stablefs.views is not the JSON expected: %s" % e)
        return 1
    if empty and listed:
        print("not ok: views still listed: %s" % [v.get("name") for v in listed])
        return 1
    return 0


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "init" and len(sys.argv) == 4:
        init(sys.argv[2], int(sys.argv[3]))
    elif cmd == "write" and len(sys.argv) in (6, 7) and sys.argv[6:] in ([], ["--data"]):
        sys.exit(write(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]),
                       sys.argv[6:] == ["--data"]))
    elif cmd == "compare" and len(sys.argv) == 5:
        sys.exit(compare(sys.argv[2], sys.argv[3], sys.argv[4]))
    elif cmd == "views" and len(sys.argv) in (3, 4):
        sys.exit(views(sys.argv[2], sys.argv[3:] == ["--empty"]))
    else:
        sys.exit(__doc__)
