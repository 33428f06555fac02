"""Ticket holds: one document per seat slot, so no ticket type sells past its capacity.

A ticket type of capacity C has slots 0..C-1. An order holds n tickets by inserting n documents
``{_id: "<eventId>:<ticketTypeId>:<slot>"}``: _id is unique, so two orders never hold one slot. A
unique insert is atomic on MongoDB and on FerretDB alike, where FerretDB v1's conditional updates
and deletes are not (a filter is read, then the matching ids are written: docs/development.md "FerretDB"), so
no counter or conditional update decides anything here.

Holds are taken when the order is created and kept while it is pending and once it completes. An
order that ends failed or cancelled (no_callback included) releases them exactly once: the release
first inserts a marker under the order's id (a unique insert again), and only the writer whose
marker went in deletes the slots. Two deleters of one order could otherwise delete a slot that a
third order took between their read and their write. A release interrupted midway (the store
failed) leaves its marker unfinished; Reconciler's sweep finishes it (finish_interrupted), and frees
the holds of orders that were never stored (the store failed between the hold and the order).
"""
import logging
import random
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from ..domain.models import utcnow
from ..errors import ChangeInProgress, SoldOut
from .order_store import durable, unavailable_on_error

log = logging.getLogger(__name__)

MAX_ROUNDS = 20
"""Rounds of read-then-insert one hold may take while other orders take the slots it tried."""
INTERRUPTED_AFTER = timedelta(seconds=30)
"""An unfinished release this old was interrupted; the sweep finishes it (EVENTI_RELEASE_INTERRUPTED_AFTER_SECONDS
sets it for a worker: tests shorten it)."""
ORPHAN_AFTER = timedelta(minutes=2)
"""Holds this old that their order does not list belong to a creation that failed after holding
(the order was never stored, or another request with the same Idempotency-Key stored it)."""
ORPHAN_WINDOW = timedelta(hours=1)
"""How far back the sweep looks for such holds (it runs every few minutes when enabled)."""
DUPLICATE_KEY = 11000
"""The server's error code for a unique index violation (a slot another order holds)."""
SPARSE_SLOTS = 50_000
"""Above this capacity free slots are found by random draws, not by listing every slot."""
LISTED_SLOTS = 1_000
"""Up to this capacity a round that met taken slots reads which are taken before the next; above it, reading
costs a row per ticket held (all of them with every draw that meets one), so RANDOM_ROUNDS go first."""
RANDOM_ROUNDS = 8
"""Rounds of random slots, none read, tried for a type above LISTED_SLOTS: a round is one insert, a read a
row per hold. All eight meet taken slots 1 time in 10^8 at 10 % held, 1 in 256 at half held."""


def slot_id(event_id: str, ticket_type_id: str, slot: int) -> str:
    return f"{event_id}:{ticket_type_id}:{slot}"


class TicketHolds:
    """Holds and releases the slots of ticket types; counts what is left."""

    def __init__(self, database: Database[dict[str, Any]], interrupted_after: timedelta = INTERRUPTED_AFTER) -> None:
        self.interrupted_after = interrupted_after
        writes = durable(database)
        self.holds = database.get_collection("ticket_holds", write_concern=writes)
        self.releases = database.get_collection("ticket_releases", write_concern=writes)
        self.orders = database.get_collection("orders")
        self.late = database.get_collection("late_payments")

    @unavailable_on_error
    def ensure_indexes(self) -> None:
        self.holds.create_index([("event", ASCENDING), ("type", ASCENDING)])
        self.releases.create_index([("done", ASCENDING), ("startedAt", ASCENDING)])

    @unavailable_on_error
    def hold(self, order_id: ObjectId, event_id: str, ticket_type_id: str, capacity: int, quantity: int,
             slot_range: int | None = None, holder: str | None = None) -> list[str]:
        """Hold quantity slots for the order; their ids. SoldOut, holding nothing, when fewer are free.

        The first round tries random slots without reading (cheap while most are free; the first eight
        above LISTED_SLOTS); later rounds read which slots are taken and try free ones, until the order
        holds enough or too few are free.
        slot_range is the highest capacity the type ever had (its slots may be held up to it): when it is
        above capacity, the capacity was lowered, and the holds are counted after they are taken (see
        _within_capacity). holder names the holds' owner (the order id unless given: a late payment's
        holds are "<orderId>.late", so no release of the order's first holds can delete them).
        """
        holder = holder or str(order_id)
        mine = self._take(holder, event_id, ticket_type_id, capacity, quantity)  # gives back its own on failure
        if slot_range is not None and slot_range > capacity:
            try:
                self._within_capacity(event_id, ticket_type_id, capacity)
            except BaseException:
                self._delete(holder, mine)
                raise
        return mine

    def _within_capacity(self, event_id: str, ticket_type_id: str, capacity: int) -> None:
        """SoldOut when the type's holds, ours included, are more than its lowered capacity.

        After a capacity is lowered, holds above it (slots capacity..slot_range-1) do not block the slots
        below it, so the unique slot ids alone no longer cap the count. Every order that holds counts after
        its inserts: of two racing orders the later count sees both, so they cannot both keep more than fit.
        """
        if self.holds.count_documents({"event": event_id, "type": ticket_type_id}) > capacity:
            raise SoldOut()

    def _take(self, holder: str, event_id: str, ticket_type_id: str, capacity: int, quantity: int) -> list[str]:
        mine: list[str] = []
        random_rounds = RANDOM_ROUNDS if capacity > LISTED_SLOTS else 1
        try:
            for round_number in range(MAX_ROUNDS):
                need = quantity - len(mine)
                if need == 0:
                    return mine
                if round_number < random_rounds:
                    candidates = random.sample(range(capacity), min(need, capacity))
                else:
                    candidates = self._free_slots(event_id, ticket_type_id, capacity, need)
                mine.extend(self._insert(holder, event_id, ticket_type_id, candidates))
            if len(mine) == quantity:
                return mine
            raise SoldOut()
        except BaseException:
            self._delete(holder, mine)
            raise

    def _free_slots(self, event_id: str, ticket_type_id: str, capacity: int, need: int) -> list[int]:
        taken = {doc["n"] for doc in self.holds.find({"event": event_id, "type": ticket_type_id}, {"n": 1, "_id": 0})}
        if capacity - len(taken) < need:
            raise SoldOut()
        if capacity <= SPARSE_SLOTS or len(taken) * 2 > capacity:
            return random.sample([n for n in range(capacity) if n not in taken], need)
        picked: set[int] = set()
        while len(picked) < need:
            n = random.randrange(capacity)
            if n not in taken:
                picked.add(n)
        return list(picked)

    def _insert(self, holder: str, event_id: str, ticket_type_id: str, slots: list[int]) -> list[str]:
        """Hold the slots in one insert (unordered: each goes in unless taken); the ids that went in.

        A failure other than taken slots gives back the slots known to have gone in, then raises. When
        the outcome is unknown (the connection dropped), nothing is deleted, as with a single insert: a
        slot of the batch may already be this holder's (an Idempotency-Key's retry holds under the same
        order id) and listed by its stored order; holds that landed unlisted are the sweep's (_free_orphans).
        """
        now = utcnow()
        ids = [slot_id(event_id, ticket_type_id, slot) for slot in slots]
        docs = [{"_id": ids[index], "event": event_id, "type": ticket_type_id, "n": slot, "orderId": holder,
                 "heldAt": now} for index, slot in enumerate(slots)]
        try:
            if len(docs) == 1:
                self.holds.insert_one(docs[0])
            elif docs:
                self.holds.insert_many(docs, ordered=False)
            return ids
        except DuplicateKeyError:  # insert_one's: the one slot is taken
            return []
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            failed = {error["index"] for error in errors}
            went_in = [slot for index, slot in enumerate(ids) if index not in failed]
            if exc.details.get("writeConcernErrors") or any(error.get("code") != DUPLICATE_KEY for error in errors):
                self._delete(holder, went_in)
                raise
            return went_in

    def give_back(self, order_id: ObjectId, slots: list[str], holder: str | None = None) -> None:
        """Delete slots this writer took and no order will list (best effort: only this writer has them)."""
        try:
            self._delete(holder or str(order_id), slots)
        except PyMongoError as exc:
            log.warning("Ticket holds of an unstored order not given back orderId=%s slots=%d (%s)",
                        order_id, len(slots), exc.__class__.__name__)

    @unavailable_on_error
    def release(self, order_id: ObjectId) -> bool:
        """Give the order's tickets back, once; True when this call started the release.

        A release found started but not done is finished here once it is interrupted_after old (its
        writer raised when the store failed, or died); while younger its writer may still be deleting,
        and ChangeInProgress says so: the caller must not show the order final yet (a callback answers
        503 and the Settler tries again), so an order never reads failed while holding slots. Only one
        live deleter at a time: on FerretDB v1 a delete reads its filter, then deletes by _id, so two
        deleters of one order could delete a slot resold between the two steps.
        """
        order = self.orders.find_one({"_id": order_id}, {"ticketSlots": 1})
        slots = (order or {}).get("ticketSlots")
        if not slots:
            return False
        try:
            self.releases.insert_one({"_id": str(order_id), "slots": slots, "startedAt": utcnow(), "done": False})
        except DuplicateKeyError:
            self._finish_if_interrupted(str(order_id))
            return False
        self._finish(str(order_id), slots)
        log.info("Tickets released orderId=%s count=%d", order_id, len(slots))
        return True

    def _finish_if_interrupted(self, order_id: str) -> None:
        marker = self.releases.find_one({"_id": order_id})
        if marker is None or marker["done"]:
            return
        if marker["startedAt"] > utcnow() - self.interrupted_after:
            raise ChangeInProgress()
        log.warning("Finishing an interrupted ticket release orderId=%s", order_id)
        self._finish(order_id, marker["slots"])

    @unavailable_on_error
    def finish_release(self, order_id: ObjectId) -> None:
        """Make sure a failed or cancelled order holds nothing: start its release, or finish an interrupted one.

        One read when the release is done already (every duplicate of a failure lands here)."""
        marker = self.releases.find_one({"_id": str(order_id)}, {"done": 1})
        if marker is None:
            self.release(order_id)
        elif not marker["done"]:
            self._finish_if_interrupted(str(order_id))

    @unavailable_on_error
    def finish_interrupted(self, now: datetime | None = None) -> int:
        """Finish releases whose writer stopped midway and free holds of orders never stored; how many orders."""
        now = now or utcnow()
        finished = 0
        stalled = {"done": False, "startedAt": {"$lt": now - self.interrupted_after}}
        for marker in list(self.releases.find(stalled).limit(500)):
            log.warning("Finishing an interrupted ticket release orderId=%s", marker["_id"])
            self._finish(marker["_id"], marker["slots"])
            finished += 1
        return finished + self._free_orphans(now)

    def _free_orphans(self, now: datetime) -> int:
        """Holds, taken between ORPHAN_WINDOW and ORPHAN_AFTER ago, that no stored order lists: free them.

        A late payment's holds ("<orderId>.late") count as listed while its decision lists them, before
        the order follows it (eventi/services/late_payment.py).
        """
        recent = self.holds.find({"heldAt": {"$lt": now - ORPHAN_AFTER, "$gt": now - ORPHAN_WINDOW}}, {"orderId": 1})
        slots_of: dict[str, list[str]] = {}
        for hold in recent:
            slots_of.setdefault(hold["orderId"], []).append(hold["_id"])
        listed = self._listed_slots({holder.split(".")[0] for holder in slots_of})
        freed = 0
        for holder, slots in slots_of.items():
            orphans = [slot for slot in slots if slot not in listed.get(holder.split(".")[0], ())]
            if orphans:
                log.warning("Freeing ticket holds no stored order lists orderId=%s count=%d", holder, len(orphans))
                self._delete(holder, orphans)
                freed += 1
        return freed

    def _listed_slots(self, order_ids: set[str]) -> dict[str, set[str]]:
        """order id -> the slots its order and its late payment's decision list."""
        ids = [ObjectId(order_id) for order_id in order_ids if ObjectId.is_valid(order_id)]
        listed: dict[str, set[str]] = {}
        for start in range(0, len(ids), 500):
            batch = {"_id": {"$in": ids[start:start + 500]}}
            for doc in [*self.orders.find(batch, {"ticketSlots": 1}), *self.late.find(batch, {"slots": 1})]:
                listed.setdefault(str(doc["_id"]), set()).update(doc.get("ticketSlots") or doc.get("slots") or ())
        return listed

    def _finish(self, order_id: str, slots: list[str]) -> None:
        self._delete(order_id, slots)
        self.releases.update_one({"_id": order_id}, {"$set": {"done": True}})

    def _delete(self, order_id: str, slots: Iterable[str]) -> None:
        for slot in slots:  # by _id: the one filter FerretDB answers from an index
            self.holds.delete_one({"_id": slot, "orderId": order_id})

    def left(self, event: dict[str, Any]) -> dict[str, int]:
        """Tickets left per ticket type id (capacity minus slots held)."""
        return self.left_of_each([event])[0]

    @unavailable_on_error
    def left_of_each(self, events: list[dict[str, Any]]) -> list[dict[str, int]]:
        """left() of every event, counted in one query (an event listing: not one count per ticket type)."""
        held: dict[tuple[Any, str], int] = {}
        if events:
            pipeline: list[dict[str, Any]] = [
                {"$match": {"event": {"$in": [event["_id"] for event in events]}}},
                {"$group": {"_id": {"event": "$event", "type": "$type"}, "held": {"$sum": 1}}}]
            held = {(row["_id"]["event"], row["_id"]["type"]): row["held"] for row in self.holds.aggregate(pipeline)}
        return [{t["id"]: max(0, t["capacity"] - held.get((event["_id"], t["id"]), 0)) for t in event["ticketTypes"]}
                for event in events]
