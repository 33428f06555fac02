"""How FerretDB's per-operation cost grows with the orders collection: python -m bench.store_probe.

Starts its own FerretDB, then for 100, 1,000 and 10,000 orders times 50 find_one({_id}) and 50
findAndModify({_id, status}) calls, one at a time (the figures quoted in docs/benchmarks.md).
"""
import tempfile
import time

from bson import ObjectId
from pymongo import MongoClient

from .stack import FERRETDB, Server, _await_port, free_port


def main():
    workdir = tempfile.mkdtemp(prefix="eventi-store-probe-")
    port = free_port()
    server = Server("ferretdb", [FERRETDB, "--handler=sqlite", f"--sqlite-url=file:{workdir}/", f"--state-dir={workdir}",
                                 f"--listen-addr=127.0.0.1:{port}", "--debug-addr=-", "--telemetry=disable",
                                 "--log-level=warn"], f"{workdir}/ferretdb.log").start(r".", count=0)
    try:
        _await_port(port)
        orders = MongoClient(f"mongodb://127.0.0.1:{port}/probe")["probe"]["orders"]
        for n in (100, 1000, 10_000):
            orders.drop()
            ids = [ObjectId() for _ in range(n)]
            for i in range(0, n, 1000):
                orders.insert_many([{"_id": x, "status": "pending", "amount": 1500} for x in ids[i:i + 1000]])
            t = time.perf_counter()
            for x in ids[:50]:
                orders.find_one({"_id": x})
            read = (time.perf_counter() - t) / 50
            t = time.perf_counter()
            for x in ids[50:100]:
                orders.find_one_and_update({"_id": x, "status": "pending"}, {"$set": {"status": "completed"}})
            write = (time.perf_counter() - t) / 50
            print(f"{n:>6} orders: find_one by _id {read * 1000:.1f} ms, findAndModify {write * 1000:.1f} ms")
    finally:
        server.stop(timeout=20)


if __name__ == "__main__":
    main()
