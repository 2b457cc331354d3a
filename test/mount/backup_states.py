#!/usr/bin/env python3
"""Files whose every state is known, for test/mount/backup_tools.sh.

  backup_states.py init DIR           write the files at version 0
  backup_states.py write DIR JOURNAL  rewrite them in place until SIGTERM
  backup_states.py check DIR JOURNAL  is each copy in DIR a state its file had?

A file is CHUNKS chunks of CHUNK bytes, made of 32-byte records naming the
file, its version and the record's offset. The writer rewrites one file at a
time, version after version, one chunk per pwrite() in a fresh random order,
and journals the order of each version before writing it. So each state a
file passes through is "version v, except the first k chunks of version
v+1's order, which are v+1". A copy is correct if it is exactly such a
state with v+1 journaled: a torn copy (a chunk of a third version, new
chunks that are not a prefix of their version's order, a record moved or
zeroed) is not. A snapshot reads its file as it was at open, and an open
falls between two pwrite()s, so it always yields such a state (one pwrite of
a chunk is one FUSE WRITE, which a snapshot takes whole or not at all).
"""
import os
import random
import signal
import sys

FILES = 6
CHUNK = 64 * 1024
CHUNKS = 64             # 4 MiB files
RECORD = 32


def name(i):
    return "f%02d" % i


def record(fname, version, off):
    r = b"%s v%08d o%010d" % (fname.encode(), version, off)
    return r.ljust(RECORD - 1, b".") + b"\n"


def chunk(fname, version, c):
    base = c * CHUNK
    return b"".join(record(fname, version, base + o) for o in range(0, CHUNK, RECORD))


def init(d):
    for i in range(FILES):
        with open(os.path.join(d, name(i)), "wb") as f:
            for c in range(CHUNKS):
                f.write(chunk(name(i), 0, c))


def write(d, journal):
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    version = [0] * FILES
    rng = random.Random(os.getpid())
    fds = [os.open(os.path.join(d, name(i)), os.O_WRONLY) for i in range(FILES)]
    with open(journal, "a", buffering=1) as j:
        while not stop:
            for i in range(FILES):
                v = version[i] + 1
                order = list(range(CHUNKS))
                rng.shuffle(order)
                j.write("%s %d %s\n" % (name(i), v, ",".join(map(str, order))))
                j.flush()
                for c in order:
                    os.pwrite(fds[i], chunk(name(i), v, c), c * CHUNK)
                version[i] = v
    for fd in fds:
        os.close(fd)
    print("# writer stopped at: %s" % " ".join("%s v%d" % (name(i), version[i])
                                    for i in range(FILES)))


def chunk_version(data, fname, c):
    """The version of chunk c of a copy, or None if it is not one whole."""
    part = data[c * CHUNK:(c + 1) * CHUNK]
    if len(part) != CHUNK:
        return None
    try:
        v = int(part[len(fname) + 2:len(fname) + 10])
    except ValueError:
        return None
    return v if part == chunk(fname, v, c) else None


def check_file(path, fname, orders):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return "not restored", None
    if len(data) != CHUNK * CHUNKS:
        return "size %d, not %d" % (len(data), CHUNK * CHUNKS), None
    versions = [chunk_version(data, fname, c) for c in range(CHUNKS)]
    if None in versions:
        return "chunk %d is no whole version" % versions.index(None), None
    low, high = min(versions), max(versions)
    if high - low > 1:
        return "versions %d to %d in one copy" % (low, high), None
    if high == low:
        if low and (fname, low) not in orders:
            return "version %d was never written" % low, None
        return None, "v%d" % low
    if (fname, high) not in orders:
        return "version %d was never written" % high, None
    new = {c for c in range(CHUNKS) if versions[c] == high}
    if new != set(orders[(fname, high)][:len(new)]):
        return ("v%d's %d chunks are not the first %d it wrote (torn)"
                % (high, len(new), len(new))), None
    return None, "v%d with the first %d chunks of v%d" % (low, len(new), high)


def check(d, journal):
    orders = {}
    with open(journal) as j:
        for line in j:
            fname, v, order = line.split()
            orders[(fname, int(v))] = [int(c) for c in order.split(",")]
    bad = 0
    for i in range(FILES):
        why, state = check_file(os.path.join(d, name(i)), name(i), orders)
        print("%s %s: %s" % ("not ok:" if why else "ok:", name(i), why or state))
        bad += why is not None
    return 1 if bad else 0


if __name__ == "__main__":
    cmd, d = sys.argv[1], sys.argv[2]
    if cmd == "init":
        init(d)
    elif cmd == "write":
        write(d, sys.argv[3])
    elif cmd == "check":
        sys.exit(check(d, sys.argv[3]))
    else:
        sys.exit("usage: backup_states.py init|write|check DIR [JOURNAL]")
