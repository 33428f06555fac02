"""The side-by-side table (terminal and Markdown), the machine description and the results file."""
import json
import os
import platform
import re
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- bench:latest -->", "<!-- /bench:latest -->"


def machine():
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(), "memory": mem,
            "python": platform.python_version()}


def _ms(x):
    return "–" if x is None else (f"{x * 1000:.1f} ms" if x < 10 else f"{x:.1f} s")


def _per(cpu, count):
    """CPU milliseconds per item of the servers on the request path."""
    return " / ".join(f"{1000 * cpu[k] / count:.2f}" for k in ("gunicorn", "ferretdb", "postgres", "redis")) + " ms"


CALLBACK_PHASES = ("callback_steady", "callback_burst")
SERVERS = ("gunicorn", "ferretdb", "postgres", "redis")


def paid_order_cpu(d):
    """{server: CPU seconds} of one paid order: its creation (with the STK push) plus its callback, which
    includes answering the wait the callback wakes."""
    create, orders = d["create"]["cpu"], d["create"]["orders"]
    callback, callbacks = d["callback_cpu"], d["callbacks_sent"]
    return {k: create[k] / orders + callback[k] / callbacks for k in SERVERS}


def _paid(d):
    cpu = paid_order_cpu(d)
    return (f"{1000 * sum(cpu.values()):.2f} ms (" + " / ".join(f"{1000 * cpu[k]:.2f}" for k in SERVERS) + ")")


def _answered(phase):
    """Callbacks of a phase answered 200."""
    return phase["orders"] - phase["post_errors"]


def _lat(phase, key):
    lat = (phase or {}).get("latency")
    return None if not lat else lat[key]


def rows(designs):
    """(label, [value per design], [number per design or None] for ratios)."""
    out = []

    def add(label, fn, num=None):
        vals, nums = [], []
        for d in designs:
            try:
                vals.append(fn(d))
                nums.append(num(d) if num else None)
            except (KeyError, TypeError, ZeroDivisionError):
                vals.append("–")
                nums.append(None)
        out.append((label, vals, nums))

    n = lambda d: d["n"]  # noqa: E731
    cr = lambda d: d["create"]  # noqa: E731
    add("orders created through POST /api/orders, each STK-pushed / errors",
        lambda d: f"{cr(d)['orders']} / {cr(d)['errors']} ({cr(d)['clients']} clients)", lambda d: cr(d)["errors"])
    add("order creation rate: all / first 10,000 / last 10,000",
        lambda d: f"{cr(d)['rate']:.0f} / {cr(d)['first']['rate']:.0f} / {cr(d)['last']['rate']:.0f} per s",
        lambda d: cr(d)["rate"])
    add("order creation POST, p50 / p99",
        lambda d: f"{_ms(cr(d)['post']['p50'])} / {_ms(cr(d)['post']['p99'])}", lambda d: cr(d)["post"]["p99"])
    add("CPU per order created: gunicorn / FerretDB / PostgreSQL / Redis",
        lambda d: _per(cr(d)["cpu"], cr(d)["orders"]), lambda d: cr(d)["cpu"]["gunicorn"] / cr(d)["orders"])
    add("clients held at once", lambda d: f"{d.get('held', d['n'])}" + ("" if d["all_held"] else " (NOT all)"))
    add("time to open them all", lambda d: f"{d['connect_seconds']:.1f} s", lambda d: d["connect_seconds"])
    add("errors", lambda d: str(d["errors"]), lambda d: d["errors"])
    add("unanswered at the end", lambda d: str(d["unanswered"]))
    add("waits answered pending (re-waits)", lambda d: str(d["timeouts"]))
    for phase, title in (("callback_steady", "callback POST → client answered"),
                         ("publish_steady", "notifier alone: PUBLISH → client answered")):
        for q in ("p50", "p90", "p99", "max"):
            add(f"{title}, {q}", lambda d, p=phase, q=q: _ms(_lat(d["phases"][p], q)),
                lambda d, p=phase, q=q: _lat(d["phases"][p], q))
    add("callback POST itself, p50 / p99",
        lambda d: f"{_ms(d['phases']['callback_steady']['post']['p50'])} / {_ms(d['phases']['callback_steady']['post']['p99'])}")
    add("steady callbacks: time to send and get all 200s",
        lambda d: f"{d['phases']['callback_steady']['send_seconds']:.1f} s "
                  f"({d['phases']['callback_steady']['orders']} at {d['rate']:.0f}/s)")
    add("steady publishes achieved rate",
        lambda d: f"{d['phases']['publish_steady']['orders'] / d['phases']['publish_steady']['send_seconds']:.0f}/s")
    add("callbacks answered 200 / sent (steady + burst)",
        lambda d: f"{sum(d['phases'][p]['orders'] - d['phases'][p]['post_errors'] for p in CALLBACK_PHASES)}"
                  f" / {sum(d['phases'][p]['orders'] for p in CALLBACK_PHASES)}")
    add("steady callbacks achieved rate",
        lambda d: f"{_answered(d['phases']['callback_steady']) / d['phases']['callback_steady']['send_seconds']:.0f}/s")
    add("burst of callbacks: all clients answered",
        lambda d: f"{_ms(d['phases']['callback_burst']['all_answered_seconds'])} "
                  f"({d['phases']['callback_burst']['orders']} callbacks)",
        lambda d: d["phases"]["callback_burst"]["all_answered_seconds"])
    add("burst of publishes: all clients answered", lambda d: _ms(d["phases"]["publish_burst"]["all_answered_seconds"]),
        lambda d: d["phases"]["publish_burst"]["all_answered_seconds"])
    add("burst of publishes: p99", lambda d: _ms(_lat(d["phases"]["publish_burst"], "p99")),
        lambda d: _lat(d["phases"]["publish_burst"], "p99"))
    add("HTTP requests per payment (mean / max)",
        lambda d: f"{d['requests_per_payment']:.2f} / {d['requests_per_payment_max']}", lambda d: d["requests_per_payment"])
    add("MongoDB reads per held client (hold)", lambda d: f"{d['store_reads_hold'] / n(d):.3f}",
        lambda d: d["store_reads_hold"] / n(d))
    add("Redis connected clients while holding", lambda d: str(d["redis_clients_holding"]),
        lambda d: d["redis_clients_holding"])
    add("Redis connections per worker (max)", lambda d: str(max(d["redis_clients_per_worker"] or [0])),
        lambda d: max(d["redis_clients_per_worker"] or [0]))
    add("gunicorn RSS before → holding", lambda d: f"{d['rss_before'] / 2**20:.0f} → {d['rss_holding'] / 2**20:.0f} MiB",
        lambda d: d["rss_holding"])
    add("RSS per held client", lambda d: f"{(d['rss_holding'] - d['rss_before']) / n(d) / 1024:.1f} KB",
        lambda d: (d["rss_holding"] - d["rss_before"]) / n(d))
    add("server CPU during the idle hold",
        lambda d: f"{d['idle_server_cpu']:.2f} s / {d['idle_seconds']:.0f} s = "
                  f"{100 * d['idle_server_cpu'] / d['idle_seconds']:.1f} % of a core",
        lambda d: d["idle_server_cpu"])
    add("Redis CPU during the idle hold", lambda d: f"{d['idle_redis_cpu']:.2f} s", lambda d: d["idle_redis_cpu"])
    add("FerretDB / PostgreSQL CPU during the idle hold",
        lambda d: f"{d['idle_cpu']['ferretdb']:.2f} / {d['idle_cpu']['postgres']:.2f} s", lambda d: d["idle_cpu"]["postgres"])
    add("CPU per callback: gunicorn / FerretDB / PostgreSQL / Redis",
        lambda d: _per(d["callback_cpu"], d["callbacks_sent"]),
        lambda d: d["callback_cpu"]["gunicorn"] / d["callbacks_sent"])
    add("server CPU per paid order (creation + callback + its wait's answer): all four (gunicorn / FerretDB / "
        "PostgreSQL / Redis)", _paid, lambda d: sum(paid_order_cpu(d).values()))
    add("PayHero simulator CPU per order created (apart, not a server's)",
        lambda d: f"{1000 * cr(d)['cpu']['simulator'] / cr(d)['orders']:.2f} ms")
    add("gunicorn CPU per callback in the kernel (system time)",
        lambda d: f"{1000 * d['callback_cpu']['gunicorn_system'] / d['callbacks_sent']:.2f} ms")
    add("server CPU during the callback/publish phases", lambda d: f"{d['phases_server_cpu']:.1f} s",
        lambda d: d["phases_server_cpu"])
    add("fan-out: server CPU per unwatched message",
        lambda d: f"{1e6 * d['fanout']['server_cpu'] / d['fanout']['messages']:.0f} µs ({d['fanout']['workers']} workers)",
        lambda d: d["fanout"]["server_cpu"] / d["fanout"]["messages"])
    add("load generator CPU (all processes)", lambda d: f"{d['loadgen_cpu']:.1f} s", lambda d: d["loadgen_cpu"])
    add("coordinator CPU (callbacks, publishes)", lambda d: f"{d['coordinator_cpu']:.1f} s")
    return out


def _ratio(a, b):
    if a is None or b is None:
        return "–"
    if b == 0:
        return "–" if a == 0 else "∞"
    return f"{a / b:.1f}×"


def table(designs, markdown=False):
    names = [d["design"] for d in designs]
    base = 0  # ratios against the first design (hub)
    others = [i for i in range(len(designs)) if i != base]
    head = ["figure", *names, *[f"{names[i]} / {names[base]}" for i in others]]
    body = []
    for label, vals, nums in rows(designs):
        body.append([label, *vals, *[_ratio(nums[i], nums[base]) for i in others]])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines)
    widths = [max(len(str(r[i])) for r in [head, *body]) for i in range(len(head))]
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False))  # noqa: E731
    return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *[fmt(r) for r in body]])


def git_commit():
    """{"commit", "dirty"} of the checkout the benchmark runs from (what the servers run)."""
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=str(ROOT), capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "HEAD") or None, "branch": git("rev-parse", "--abbrev-ref", "HEAD") or None,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def write_results(results, command, prefix=""):
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = ROOT / "bench" / "results" / f"{prefix}{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**results, "command": command, "machine": machine(), "git": git_commit(),
                                "finished": stamp}, indent=1))
    return path


def update_docs(results, command, results_path, machine=None):
    """Replace the latest-run section of docs/benchmarks.md (between its markers)."""
    doc = ROOT / "docs" / "benchmarks.md"
    m = machine or globals()["machine"]()
    section = "\n".join([
        BEGIN,
        f"Run finished {results_path.stem} (UTC), results file `bench/results/{results_path.name}` (not committed).",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), Linux {m['kernel']}, {m['memory']} RAM, Python {m['python']}; "
        "shared with other engineers' test runs, so absolute numbers are noisy: compare the columns.",
        "",
        table(results["designs"], markdown=True),
        END,
    ])
    text = doc.read_text() if doc.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: section, text, flags=re.S)
    doc.write_text(text)
