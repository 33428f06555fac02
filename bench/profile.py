"""py-spy on every gunicorn worker during a phase, and where the samples went.

`python -m bench --profile DIR` records each worker during the callback phases (py-spy from the
test extra; it needs ptrace, which root has) into DIR/<design>-<pid>.txt in py-spy's raw
(collapsed-stack) format, which speedscope also opens. Only samples holding the GIL are kept
(`--gil`): py-spy's idle detection counts a worker that is runnable but waiting for a core, or in a
socket system call, as busy, which on a shared 2-core machine made up most of the samples. So the
shares are of the Python-level (user) CPU; the kernel's share (system calls) is the "system time"
row of the bench table. The sampling pauses the worker briefly: latencies of a profiled run are not
comparable.
`python -m bench.profile DIR/*.txt` prints the shares again.
"""
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

PY_SPY = Path(sys.executable).with_name("py-spy")
RATE = 200

CATEGORIES = [
    # (name, pattern on a frame's file name); the first that matches names the frame.
    ("logging", re.compile(r"(?:^|/)(?:logging/|eventi/logs\.py)")),
    ("prometheus", re.compile(r"(?:^|/)(?:prometheus_client/|eventi/metrics\.py)")),
    ("marshmallow", re.compile(r"(?:^|/)marshmallow/")),
    ("pymongo/bson", re.compile(r"(?:^|/)(?:pymongo|bson)/")),
    ("redis-py", re.compile(r"(?:^|/)redis/")),
    ("flask/werkzeug", re.compile(r"(?:^|/)(?:flask|werkzeug|itsdangerous|jinja2)/")),
    ("json", re.compile(r"(?:^|/)json/")),
    ("gunicorn", re.compile(r"(?:^|/)gunicorn/")),
    ("gevent", re.compile(r"(?:^|/)(?:gevent|greenlet)/")),
    ("eventi", re.compile(r"(?:^|/)eventi/")),
]
OTHER = "other (stdlib, C)"
IDLE = re.compile(r"\(gevent/_threading\.py:")
SOCKET_IO = re.compile(r"\(gevent/(?:_socketcommon|_socket3)\.py:")
EVENTI = re.compile(r"(?:^|/)eventi/")
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


class Profiler:
    """py-spy record on each pid until stop(); stop() returns the shares of the samples."""

    def __init__(self, pids, outdir, label):
        self.dir = Path(outdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.files = [self.dir / f"{label}-{pid}.txt" for pid in pids]
        self.procs = [subprocess.Popen([str(PY_SPY), "record", "--pid", str(pid), "--rate", str(RATE), "--gil", "--format", "raw",
                                        "-o", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                      for pid, path in zip(pids, self.files, strict=True)]

    def stop(self):
        for p in self.procs:
            p.send_signal(signal.SIGINT)  # py-spy writes its file and exits
        for p in self.procs:
            p.wait(60)
        return {"files": [str(f) for f in self.files], **shares(self.files)}


def parse(paths):
    """[(frames root→leaf, count)] of py-spy raw files (the process and thread frames dropped)."""
    stacks = []
    for path in paths:
        for line in Path(path).read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread (0x"))]
            stacks.append((frames, int(count)))
    return stacks


def category(frame):
    m = FRAME.match(frame)
    path = m.group("file") if m else frame
    for name, pattern in CATEGORIES:
        if pattern.search(path):
            return name
    return OTHER


def shares(paths, top=25):
    """Sample shares. `self`: the innermost frame's category, with stdlib and gevent frames (socket
    calls, locks) charged to the nearest named caller, so pymongo's sends count as pymongo; gevent
    only when nothing else is on the stack (the loop itself). `inclusive`: any frame in the stack,
    per category and per eventi function; `socket I/O` is any gevent socket call. Samples of the
    gevent threadpool's idle threads (waiting in gevent/_threading.py) are dropped."""
    stacks = [(frames, n) for frames, n in parse(paths) if frames and not IDLE.search(frames[-1])]
    total = sum(c for _, c in stacks)
    own, incl, funcs = Counter(), Counter(), Counter()
    for frames, count in stacks:
        cats = [category(f) for f in frames]
        named = [c for c in cats if c not in (OTHER, "gevent")]
        own[named[-1] if named else ("gevent" if "gevent" in cats else OTHER)] += count
        for c in set(cats):
            incl[c] += count
        if any(SOCKET_IO.search(f) for f in frames):
            incl["socket I/O (gevent send/recv/connect)"] += count
        for m in {m for m in map(FRAME.match, frames) if m and EVENTI.search(m.group("file"))}:
            funcs[f"{m.group('func')} ({EVENTI.split(m.group('file'), 1)[-1]})"] += count
    pct = lambda c: round(100 * c / total, 1) if total else 0.0  # noqa: E731
    return {"samples": total, "rate": RATE,
            "self": {k: pct(v) for k, v in own.most_common()},
            "inclusive": {k: pct(v) for k, v in incl.most_common()},
            "eventi_functions": {k: pct(v) for k, v in funcs.most_common(top)}}


def main(argv=None):
    paths = (argv if argv is not None else sys.argv[1:])
    if not paths:
        sys.exit("usage: python -m bench.profile PY_SPY_RAW_FILE...")
    res = shares(paths)
    print(f"{res['samples']} samples at {res['rate']} Hz")
    for key in ("self", "inclusive", "eventi_functions"):
        print(f"\n{key}:")
        for name, p in res[key].items():
            print(f"  {p:5.1f} %  {name}")


if __name__ == "__main__":
    main()
