"""python -m bench.tracemalloc_report DIR WAITS: what each held wait keeps, from bench.paid_probe --tracemalloc.

DIR holds each worker's two snapshots (<pid>-1.snap at half the waits held, <pid>-2.snap at all);
WAITS is how many waits the workers took on between them. Prints the traced growth per wait beside the
PSS growth per wait (less tracemalloc's own), then the growth per wait by allocating line and by
traceback, largest first: the part of a held wait tracemalloc can see, and what allocated it.
"""
import argparse
import json
import tracemalloc
from collections import defaultdict
from pathlib import Path

SKIP = ("/tracemalloc.py", "<frozen")


def short(filename):
    for marker in ("site-packages/", "/lib/python3.11/", "/eventi/", "/bench/"):
        if marker in filename:
            return filename.split(marker, 1)[1] if marker != "/eventi/" else "eventi/" + filename.split(marker, 1)[1]
    return filename


def pairs(directory):
    """{pid: (first snapshot path, second snapshot path)} of the workers that wrote both."""
    found = defaultdict(dict)
    for path in Path(directory).glob("*.snap"):
        pid, n = path.stem.split("-")
        found[pid][int(n)] = path
    return {pid: (snaps[1], snaps[2]) for pid, snaps in found.items() if 1 in snaps and 2 in snaps}


def report(directory, waits, top=25, frames=12):
    lines_by_line, lines_by_tb = defaultdict(lambda: [0, 0]), defaultdict(lambda: [0, 0])
    traced = pss = own = 0
    for first, second in pairs(directory).values():
        a, b = tracemalloc.Snapshot.load(str(first)), tracemalloc.Snapshot.load(str(second))
        ia, ib = (json.loads(p.with_suffix(".json").read_text()) for p in (first, second))
        traced += ib["traced"] - ia["traced"]
        pss += ib["pss"] - ia["pss"]
        own += ib["tracemalloc_memory"] - ia["tracemalloc_memory"]
        for stat in b.compare_to(a, "traceback"):
            frames_kept = [f for f in stat.traceback if not f.filename.endswith(SKIP)]
            where = frames_kept[-1] if frames_kept else stat.traceback[-1]  # most recent call last
            key = f"{short(where.filename)}:{where.lineno}"
            lines_by_line[key][0] += stat.size_diff
            lines_by_line[key][1] += stat.count_diff
            tb = tuple(f"{short(f.filename)}:{f.lineno}" for f in stat.traceback)
            lines_by_tb[tb][0] += stat.size_diff
            lines_by_tb[tb][1] += stat.count_diff
    out = [f"{waits} waits: traced growth {traced / waits:.0f} B per wait; PSS growth {pss / waits:.0f} B per wait, "
           f"of which tracemalloc's own {own / waits:.0f} B: {(pss - own - traced) / waits:.0f} B per wait untraced",
           "", "bytes/wait | blocks/wait | allocated at"]
    for key, (size, count) in sorted(lines_by_line.items(), key=lambda kv: -kv[1][0])[:top]:
        out.append(f"{size / waits:10.0f} | {count / waits:11.2f} | {key}")
    out += ["", "by traceback (most recent call last):"]
    for tb, (size, count) in sorted(lines_by_tb.items(), key=lambda kv: -kv[1][0])[:top]:
        out.append(f"{size / waits:8.0f} B {count / waits:6.2f} blocks  " + " < ".join(reversed(tb[-frames:])))
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.tracemalloc_report", description=__doc__)
    p.add_argument("dir")
    p.add_argument("waits", type=int)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--frames", type=int, default=12, help="frames shown per traceback")
    a = p.parse_args(argv)
    print(report(a.dir, a.waits, a.top, a.frames))


if __name__ == "__main__":
    main()
