"""What one store operation costs on FerretDB over PostgreSQL, by collection size: python -m bench.store_probe.

Starts its own PostgreSQL (default, durable settings, as `make bench` runs it) and FerretDB over it, then
for 100, 1,000 and 10,000 orders runs 50 each of find_one({_id}), insert_one, update_one({_id}),
findAndModify({_id, status}) and findAndModify({_id}), one at a time, with eventi's write concern
(w: majority, j: true), and prints the wall time and the CPU FerretDB and PostgreSQL spent per operation.
"""
import time

from bson import ObjectId
from pymongo import MongoClient, WriteConcern

from devstack.processes import FerretDB, Postgres

from .stack import children, cpu_seconds

SAMPLES = 50


class StoreCpu:
    """CPU seconds of FerretDB and of PostgreSQL (postmaster, backends, reaped backends)."""

    def __init__(self, ferretdb, postgres):
        self.ferretdb, self.postmaster = ferretdb.process.proc.pid, postgres.process.proc.pid

    def __call__(self):
        return (cpu_seconds(self.ferretdb),
                cpu_seconds(self.postmaster, reaped=True) + sum(cpu_seconds(p) for p in children(self.postmaster)))


def _measure(cpu, operation, ids):
    """(wall ms, FerretDB CPU ms, PostgreSQL CPU ms) per call."""
    f0, p0 = cpu()
    start = time.perf_counter()
    for x in ids:
        operation(x)
    wall = time.perf_counter() - start
    f1, p1 = cpu()
    n = len(ids)
    return wall / n * 1000, (f1 - f0) / n * 1000, (p1 - p0) / n * 1000


def _probe(cpu, orders, ids):
    ids = ids[-2 * SAMPLES:]  # the newest orders, last in the table, as a callback's order usually is
    ops = {
        "find_one({_id})": (lambda x: orders.find_one({"_id": x}), ids[:SAMPLES]),
        "insert_one": (lambda x: orders.insert_one({"status": "pending", "amount": 1500}), ids[:SAMPLES]),
        "update_one({_id})": (lambda x: orders.update_one({"_id": x}, {"$set": {"pushedAt": 1}}), ids[:SAMPLES]),
        "findAndModify({_id, status})": (lambda x: orders.find_one_and_update(
            {"_id": x, "status": "pending"}, {"$set": {"status": "completed"}}), ids[SAMPLES:2 * SAMPLES]),
        "findAndModify({_id})": (lambda x: orders.find_one_and_update(
            {"_id": x}, {"$set": {"status": "failed"}}), ids[SAMPLES:2 * SAMPLES]),
    }
    return {name: _measure(cpu, op, xs) for name, (op, xs) in ops.items()}


def main():
    postgres = Postgres(options=()).start()
    ferretdb = FerretDB(postgres, database="probe").start()
    cpu = StoreCpu(ferretdb, postgres)
    try:
        db = MongoClient(f"mongodb://127.0.0.1:{ferretdb.port}/probe")["probe"]
        orders = db.get_collection("orders", write_concern=WriteConcern(w="majority", j=True))
        print("per operation: wall ms (FerretDB CPU ms + PostgreSQL CPU ms), one client, 50 each")
        for n in (100, 1000, 10_000):
            orders.drop()
            ids = [ObjectId() for _ in range(n)]
            for i in range(0, n, 1000):
                orders.insert_many([{"_id": x, "status": "pending", "amount": 1500} for x in ids[i:i + 1000]])
            figures = _probe(cpu, orders, ids)
            print(f"{n:>6} orders: " + ", ".join(f"{name} {w:.1f} ({f:.2f} + {p:.2f})"
                                                for name, (w, f, p) in figures.items()))
    finally:
        ferretdb.stop()
        postgres.stop()


if __name__ == "__main__":
    main()
