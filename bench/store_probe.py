"""How FerretDB's per-operation cost grows with the orders collection: python -m bench.store_probe.

Starts its own PostgreSQL and FerretDB over it, then for 100, 1,000 and 10,000 orders times 50 each of
find_one({_id}), insert_one, update_one({_id}) and findAndModify({_id, status}), one at a time.
"""
import time

from bson import ObjectId
from pymongo import MongoClient

from tests.support.processes import FerretDB, Postgres

SAMPLES = 50


def _ms_per_call(operation, ids):
    start = time.perf_counter()
    for x in ids:
        operation(x)
    return (time.perf_counter() - start) / len(ids) * 1000


def _probe(orders, ids):
    ids = ids[-2 * SAMPLES:]  # the newest orders, last in the table, as a callback's order usually is
    read = _ms_per_call(lambda x: orders.find_one({"_id": x}), ids[:SAMPLES])
    insert = _ms_per_call(lambda x: orders.insert_one({"status": "pending", "amount": 1500}), ids[:SAMPLES])
    update = _ms_per_call(lambda x: orders.update_one({"_id": x}, {"$set": {"pushedAt": 1}}), ids[:SAMPLES])
    modify = _ms_per_call(lambda x: orders.find_one_and_update({"_id": x, "status": "pending"},
                                                               {"$set": {"status": "completed"}}),
                          ids[SAMPLES:2 * SAMPLES])
    modify_id = _ms_per_call(lambda x: orders.find_one_and_update({"_id": x}, {"$set": {"status": "failed"}}),
                             ids[SAMPLES:2 * SAMPLES])
    return (f"find_one {read:.1f} ms, insert {insert:.1f} ms, update_one({{_id}}) {update:.1f} ms, "
            f"findAndModify({{_id, status}}) {modify:.1f} ms, findAndModify({{_id}}) {modify_id:.1f} ms")


def main():
    postgres = Postgres(options=()).start()
    ferretdb = FerretDB(postgres, database="probe").start()
    try:
        orders = MongoClient(f"mongodb://127.0.0.1:{ferretdb.port}/probe")["probe"]["orders"]
        for n in (100, 1000, 10_000):
            orders.drop()
            ids = [ObjectId() for _ in range(n)]
            for i in range(0, n, 1000):
                orders.insert_many([{"_id": x, "status": "pending", "amount": 1500} for x in ids[i:i + 1000]])
            print(f"{n:>6} orders: {_probe(orders, ids)}")
    finally:
        ferretdb.stop()
        postgres.stop()


if __name__ == "__main__":
    main()
