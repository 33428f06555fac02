"""OrderStore: orders and the payment_events audit trail in MongoDB."""
import functools
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, Protocol, TypeVar

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, MongoClient, ReturnDocument, WriteConcern
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, DuplicateKeyError, OperationFailure, PyMongoError
from pymongo.uri_parser import parse_uri, split_options

from .. import metrics
from ..domain.models import OrderStatus, Outcome, utcnow
from ..errors import OrderExists, StoreUnavailable

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

class TicketReleases(Protocol):
    """What OrderStore asks of the ticket holds (eventi/storage/ticket_holds.py's TicketHolds) when an order's claim says
    its tickets go back."""

    def release(self, order_id: ObjectId) -> bool: ...

    def finish_release(self, order_id: ObjectId) -> None: ...


RELEASING = frozenset({OrderStatus.FAILED.value, OrderStatus.CANCELLED.value})
"""Final statuses that give the order's tickets back; completed keeps them."""
LATE = ".late"
"""The holder suffix of a late payment's ticket holds ("<orderId>.late"): no release of the order's first
holds can delete them (eventi/storage/ticket_holds.py)."""


@dataclass(frozen=True)
class Finalized:
    """The order after its status was decided; decided is True for the delivery whose claim won."""

    order: dict[str, Any]
    decided: bool


CLIENT_DEFAULTS_TIMEOUT_MS = 2000
"""eventi's server-selection and connect timeout when the URI sets none: an outage is an error, not a hang."""


def client_defaults(timeout_ms: int = CLIENT_DEFAULTS_TIMEOUT_MS) -> dict[str, Any]:
    """The MongoClient options eventi sets when EVENTI_MONGO_URI leaves them unset (docs/operations.md).

    pymongo's own defaults (30 s to select a server, 20 s to connect, no socket timeout) would hold a
    callback or a checkout for half a minute in an outage; a 503 within seconds is what PayHero and the
    page retry on. The socket timeout bounds a stalled server, and a w=majority write waiting on it.
    """
    return {
        "serverSelectionTimeoutMS": timeout_ms,
        "connectTimeoutMS": timeout_ms,
        "socketTimeoutMS": 5 * timeout_ms,
        "maxPoolSize": 200,  # gevent: one worker runs hundreds of requests at once (reads are bounded apart)
        "appname": "eventi",  # in the server's log, currentOp and Atlas' metrics
    }


def uri_option_names(uri: str) -> frozenset[str]:
    """The names of the options the URI sets, lower-cased (URI option names are case-insensitive).

    pymongo's own parser: parse_uri for mongodb://. For mongodb+srv:// parse_uri would look the host up
    in DNS (SRV and TXT records) at every start, so only the query string is parsed, by split_options,
    the parser parse_uri itself applies to it: a TXT record may only carry authSource, replicaSet and
    loadBalanced, none of which eventi sets. MongoClient resolves the SRV record itself.
    """
    if uri.startswith("mongodb+srv://"):
        query = uri.partition("?")[2]
        options: Mapping[str, Any] = split_options(query) if query else {}
    else:
        options = parse_uri(uri)["options"]
    return frozenset(name.lower() for name in options)


def client_options(uri: str, timeout_ms: int = CLIENT_DEFAULTS_TIMEOUT_MS) -> dict[str, Any]:
    """The keyword arguments connect() gives MongoClient: a keyword overrides the same option in the URI,
    so eventi's defaults go only where the URI is silent, and what the operator wrote wins.
    tz_aware is not a URI option: eventi compares aware datetimes everywhere, so it is always set."""
    given = uri_option_names(uri)
    defaults = {name: value for name, value in client_defaults(timeout_ms).items() if name.lower() not in given}
    return {"tz_aware": True, **defaults}


def connect(uri: str, timeout_ms: int = CLIENT_DEFAULTS_TIMEOUT_MS, **extra: Any) -> MongoClient[dict[str, Any]]:
    """A MongoClient with the URI's options, and eventi's short timeouts where the URI sets none.

    retryWrites and retryReads stay pymongo's default (on) unless the URI turns them off: a write or a
    read that meets a replica-set election is retried once on the new primary.
    """
    client: MongoClient[dict[str, Any]] = MongoClient(uri, **client_options(uri, timeout_ms), **extra)
    if not client.options.retry_writes:
        log.warning("EVENTI_MONGO_URI turns retryWrites off: a write that meets a replica-set election answers 503 "
                    "(PayHero and the shopper retry) instead of being retried on the new primary")
    return client


def durable(database: Database[dict[str, Any]]) -> WriteConcern:
    """The write concern of every eventi collection: acknowledged by a majority and journaled, whatever the
    URI's w says, so no write that decided something (and was announced on Redis) is rolled back by an
    election. The URI's wTimeoutMS, when set, is kept: past it a write answers 503 (WTimeoutError)."""
    wtimeout = database.write_concern.document.get("wtimeout")
    return WriteConcern(w="majority", j=True, wtimeout=wtimeout)


def unavailable_on_error(method: Callable[P, R]) -> Callable[P, R]:
    """Turn a driver failure into StoreUnavailable (503 store_unavailable; the callers' own handling).

    What a replica set does to a write, by pymongo's names, all caught here:
    - ConnectionFailure: AutoReconnect and its subclasses NotPrimaryError (an election: the primary
      stepped down), NetworkTimeout (socketTimeoutMS passed) and ServerSelectionTimeoutError (no
      primary within serverSelectionTimeoutMS);
    - OperationFailure: WriteConcernError and its subclass WTimeoutError (the write was applied on the
      primary, but w=majority was not reached, or not within wTimeoutMS), and any other server error.
    Each of these "may or may not have succeeded": the write can have landed (and be kept) although the
    driver gave up. That is the case the unique-insert claims are built for: a status claim that landed
    is applied and announced by the Settler (eventi/services/settle.py) or PayHero's redelivery; an order
    whose insert raised was not pushed (the push comes after it) and is replayed by its Idempotency-Key
    or settled by reconcile; nothing is announced on Redis before MongoDB acknowledged it. A
    DuplicateKeyError is an answer, not a failure: the methods that insert catch it first.
    """

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (ConnectionFailure, OperationFailure) as exc:
            metrics.STORE_ERRORS.inc()
            log.warning("Store error in %s: %s", method.__name__, exc.__class__.__name__)
            raise StoreUnavailable() from exc
        except PyMongoError as exc:
            metrics.STORE_ERRORS.inc()
            raise StoreUnavailable() from exc

    return wrapper


def _due(now: datetime) -> dict[str, Any]:
    """The filter of orders reconcile has not put aside past now (reconcileAfter)."""
    return {"$or": [{"reconcileAfter": {"$exists": False}}, {"reconcileAfter": {"$lte": now}}]}


def parse_order_id(order_id: object) -> ObjectId | None:
    """The ObjectId for an orderId string, or None when it is malformed."""
    if not isinstance(order_id, str) or len(order_id) != 24:
        return None
    try:
        return ObjectId(order_id)
    except InvalidId:
        return None


class OrderStore:
    """Every MongoDB read and write of the service goes through here."""

    def __init__(self, database: Database[dict[str, Any]], max_reads: int = 32, read_queue_seconds: float = 5.0,
                 tickets: TicketReleases | None = None) -> None:
        self._tickets = tickets  # TicketHolds: an order that ends failed or cancelled gives its tickets back
        writes = durable(database)
        # A bulkhead for reads: after a Redis restart empties the status cache, every held wait
        # re-reads its order at once; those reads queue here (green, under gevent) instead of
        # opening hundreds of connections to the store and starving the callbacks' writes.
        self._reads = threading.BoundedSemaphore(max_reads)
        self._read_queue_seconds = read_queue_seconds
        self.db = database
        self.orders = database.get_collection("orders", write_concern=writes)
        self.events = database.get_collection("payment_events", write_concern=writes)
        self.claims = database.get_collection("status_claims", write_concern=writes)
        self.late = database.get_collection("late_payments", write_concern=writes)

    @unavailable_on_error
    def ensure_indexes(self) -> None:
        """Create the indexes the queries need (idempotent)."""
        self.orders.create_index([("status", ASCENDING), ("pushedAt", ASCENDING)])
        self.orders.create_index([("status", ASCENDING), ("createdAt", ASCENDING)])  # reconcile's stale pending orders
        self.events.create_index([("orderId", ASCENDING), ("receivedAt", ASCENDING)])
        self.orders.create_index([("phone", ASCENDING), ("createdAt", ASCENDING)])  # `eventi order find --phone`
        self.orders.create_index([("reference", ASCENDING)])  # `eventi order show/find` by the short reference

    @unavailable_on_error
    def create_order(self, fields: dict[str, Any], order_id: ObjectId | None = None) -> dict[str, Any]:
        """Store a new pending order (under order_id when given) and return the stored document."""
        now = utcnow()
        order = {"_id": order_id or ObjectId(), **fields, "status": OrderStatus.PENDING.value, "createdAt": now, "updatedAt": now}
        try:
            self.orders.insert_one(order)
        except DuplicateKeyError:
            # An orderId reserved by an Idempotency-Key: another request with that key stored it first,
            # unless this is the driver retrying an insert of ours that had landed (its holds are ours).
            existing = self.orders.find_one({"_id": order["_id"]})
            if existing is None or existing.get("ticketSlots") != order.get("ticketSlots"):
                raise OrderExists() from None
            return existing
        return order

    @unavailable_on_error
    def get_order(self, order_id: str) -> dict[str, Any] | None:
        """The order document, or None when there is none with that id."""
        oid = parse_order_id(order_id)
        if oid is None:
            return None
        if not self._reads.acquire(timeout=self._read_queue_seconds):
            metrics.STORE_ERRORS.inc()
            log.warning("Store read queue full: %.0fs without a free read slot", self._read_queue_seconds)
            raise StoreUnavailable()
        try:
            metrics.STORE_READS.inc()
            return self.orders.find_one({"_id": oid})
        finally:
            self._reads.release()

    @unavailable_on_error
    def finalize(self, order_id: str, outcome: Outcome, event_id: ObjectId | None = None,
                 delivery: dict[str, Any] | None = None) -> Finalized | None:
        """Decide a pending order's final status exactly once; a Finalized, or None when there is no such order.

        The decision is a claim inserted under the order's id: a unique insert is atomic on MongoDB and
        on FerretDB alike, while FerretDB v1's conditional findAndModify lets racing writers all win.
        The order document then follows its claim. When a claim exists already (another delivery won,
        or its writer timed out or died before the order followed) that claim is applied at once:
        applying a claim twice writes the same values, so there is nothing to wait for.

        delivery, an audit record from delivery() not stored yet, rides in the claim's insert (one write
        instead of two; events_for and event_by_id find it there). When another claim stands, it is stored
        on its own in payment_events before the order follows, so every delivery is audited either way.
        """
        if delivery is not None:
            event_id = delivery["_id"]
        oid = parse_order_id(order_id)
        if oid is None:
            if delivery is not None:
                self._record(delivery)
            return None
        now = utcnow()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as BSON keeps it: every announcer's body is the same
        claim: dict[str, Any] = {"_id": oid, "status": outcome.status.value, "mpesaReceipt": outcome.mpesa_receipt,
                 "failureReason": outcome.failure_reason, "resultCode": outcome.result_code, "eventId": event_id,
                 "claimedAt": now}
        if delivery is not None:
            claim["delivery"] = {name: value for name, value in delivery.items() if name != "_id"}
        try:
            self.claims.insert_one(claim)
            decided = True
        except DuplicateKeyError:
            existing = self.claims.find_one({"_id": oid}, {"delivery": 0})
            # Ours after all when the driver retried an insert of ours that had landed.
            decided = existing is not None and event_id is not None and existing["eventId"] == event_id
            if delivery is not None and not decided:
                self._record(delivery)
            if existing is None:
                return None
            claim = existing
        claim.pop("delivery", None)
        order = self._apply_claim(claim)
        return None if order is None else Finalized(order, decided)

    @unavailable_on_error
    def settle(self, order_id: str) -> dict[str, Any] | None:
        """Apply the order's status claim if it has one; the final order, or None when no status was decided."""
        oid = parse_order_id(order_id)
        claim = None if oid is None else self.claims.find_one({"_id": oid}, {"delivery": 0})
        return None if claim is None else self._apply_claim(claim)

    def _apply_claim(self, claim: dict[str, Any]) -> dict[str, Any] | None:
        """The order as it is after following its claim, or None when there is no such order."""
        # Every field comes from the claim, so writing it twice writes the same values, and the filter
        # is the _id alone: the claim decided, not this write. FerretDB serves an _id lookup from the
        # collection's _id index (built with scripts/ferretdb-id-lookup.patch; docs/benchmarks.md).
        # Tickets go back before the order shows its final status, so a final order always has its release
        # done (eventi/storage/ticket_holds.py: one releaser, however often the claim is applied). A payment that came
        # after the release (a late payment) outranks the claim: the order follows that instead.
        if self._tickets is not None and claim["status"] in RELEASING:
            self._tickets.release(claim["_id"])
            late = self.late.find_one({"_id": claim["_id"]})
            if late is not None:
                return self._follow_late(late)
        changes = {"status": claim["status"], "updatedAt": claim["claimedAt"], "statusEventId": claim["eventId"]}
        for name in ("mpesaReceipt", "failureReason", "resultCode"):
            if claim.get(name) is not None:
                changes[name] = claim[name]
        before = self.orders.find_one_and_update({"_id": claim["_id"]}, {"$set": changes},
                                                 return_document=ReturnDocument.BEFORE)
        return None if before is None else {**before, **changes}

    # --- Late payments: paid after the order failed or was cancelled (eventi/services/late_payment.py) ----

    @unavailable_on_error
    def claim_late_payment(self, claim: dict[str, Any]) -> dict[str, Any] | None:
        """Insert the claim to decide an order's late payment; None when it went in (this delivery decides),
        else the claim that stands. A unique insert under the order's id, like the status claim."""
        try:
            self.late.insert_one(claim)
            return None
        except DuplicateKeyError:
            existing = self.late.find_one({"_id": claim["_id"]})
            if existing is None:
                raise StoreUnavailable() from None  # inserted and gone: not a state this code makes
            return existing

    @unavailable_on_error
    def decide_late_payment(self, order_id: ObjectId, decision: dict[str, Any]) -> None:
        """Write the outcome into the order's late-payment claim (only its decider writes it)."""
        self.late.update_one({"_id": order_id}, {"$set": decision})

    @unavailable_on_error
    def follow_late_payment(self, decision: dict[str, Any]) -> dict[str, Any] | None:
        """The order after following its late payment's decision (completed or refund_needed); None when unknown."""
        return self._follow_late(decision)

    def _follow_late(self, decision: dict[str, Any]) -> dict[str, Any] | None:
        if decision.get("status") is None:  # claimed, not decided yet: the order stays as it is
            return self.orders.find_one({"_id": decision["_id"]})
        changes: dict[str, Any] = {"status": decision["status"], "updatedAt": decision["decidedAt"],
                                   "statusEventId": decision["eventId"], "mpesaReceipt": decision["mpesaReceipt"],
                                   "latePayment": True}
        if decision["slots"]:
            changes["ticketSlots"] = decision["slots"]
        if decision.get("refundReason"):
            changes["refundReason"] = decision["refundReason"]
        before = self.orders.find_one_and_update({"_id": decision["_id"]}, {"$set": changes},
                                                 return_document=ReturnDocument.BEFORE)
        if not decision.get("followed"):
            self.late.update_one({"_id": decision["_id"]}, {"$set": {"followed": True}})
        return None if before is None else {**before, **changes}

    @unavailable_on_error
    def unfollowed_late_payments(self, limit: int = 500) -> list[dict[str, Any]]:
        """Late-payment decisions whose order may not show them yet (their writer failed midway)."""
        return list(self.late.find({"followed": False, "status": {"$ne": None}}).limit(limit))

    @unavailable_on_error
    def undecided_late_payments(self, claimed_before: datetime, limit: int = 100) -> list[dict[str, Any]]:
        """Late-payment claims still undecided since before the given time (their decider failed)."""
        return list(self.late.find({"status": None, "claimedAt": {"$lt": claimed_before}}).limit(limit))

    @unavailable_on_error
    def event_by_id(self, event_id: ObjectId) -> dict[str, Any] | None:
        """One delivery of the audit trail by its id (in payment_events, or carried by a status claim)."""
        event = self.events.find_one({"_id": event_id})
        if event is not None:
            return event
        claim = self.claims.find_one({"eventId": event_id, "delivery": {"$exists": True}}, {"eventId": 1, "delivery": 1})
        return None if claim is None else {"_id": claim["eventId"], **claim["delivery"]}

    @unavailable_on_error
    def orders_needing_attention(self, limit: int = 100) -> list[dict[str, Any]]:
        """Orders paid but not fulfilled (refund_needed) or with a paid callback strict mode could not confirm,
        newest first: `eventi order refunds`."""
        query = {"$or": [{"status": OrderStatus.REFUND_NEEDED.value}, {"unconfirmedPayment": {"$exists": True}}]}
        return list(self.orders.find(query).sort("updatedAt", -1).limit(limit))

    @unavailable_on_error
    def finish_release(self, order_id: str) -> None:
        """Make sure a failed or cancelled order holds no ticket (finish a release a stall interrupted)."""
        oid = parse_order_id(order_id)
        if oid is not None and self._tickets is not None:
            self._tickets.finish_release(oid)

    @unavailable_on_error
    def set_fields(self, order_id: str, fields: dict[str, Any]) -> None:
        """Set extra fields on an order (PayHero references, push time)."""
        self.orders.update_one({"_id": ObjectId(order_id)}, {"$set": fields})

    @unavailable_on_error
    def stale_pending(self, before: datetime, now: datetime, limit: int = 500) -> list[dict[str, Any]]:
        """Pending orders pushed before the given time, or created before it when no push was recorded (the
        push may have gone out all the same), oldest first; those reconcile postponed (reconcileAfter) only
        once that time has come."""
        query = {"status": OrderStatus.PENDING.value, "$and": [
            {"$or": [{"pushedAt": {"$lt": before}}, {"pushedAt": {"$exists": False}, "createdAt": {"$lt": before}}]},
            _due(now)]}
        return list(self.orders.find(query).sort("createdAt", ASCENDING).limit(limit))

    @unavailable_on_error
    def given_up_recently(self, since: datetime, now: datetime, limit: int = 500) -> list[dict[str, Any]]:
        """Orders failed with no_callback since the given time that have a PayHero reference to ask about, whose
        next check (reconcileAfter) has come; oldest first."""
        query = {"status": OrderStatus.FAILED.value, "failureReason": "no_callback", "updatedAt": {"$gt": since},
                 "payheroReference": {"$exists": True}, **_due(now)}
        return list(self.orders.find(query).sort("updatedAt", ASCENDING).limit(limit))

    @staticmethod
    def delivery(order_id: str, source: str, raw_body: str, summary: dict[str, Any]) -> dict[str, Any]:
        """One delivery's audit record, not stored yet: record() stores it, or finalize() in the status claim."""
        return {"_id": ObjectId(), "orderId": order_id, "source": source, "raw": raw_body, "summary": summary,
                "receivedAt": utcnow()}

    @unavailable_on_error
    def record(self, delivery: dict[str, Any]) -> ObjectId:
        """Keep a delivery() in the audit trail; return its id."""
        return self._record(delivery)

    def _record(self, delivery: dict[str, Any]) -> ObjectId:
        try:
            self.events.insert_one(delivery)
        except DuplicateKeyError:
            pass  # the driver retried an insert of ours that had landed
        event_id: ObjectId = delivery["_id"]
        return event_id

    @unavailable_on_error
    def record_event(self, order_id: str, source: str, raw_body: str, summary: dict[str, Any]) -> ObjectId:
        """Keep one delivery verbatim in the audit trail; return its id."""
        return self._record(self.delivery(order_id, source, raw_body, summary))

    @unavailable_on_error
    def events_for(self, order_id: str) -> list[dict[str, Any]]:
        """The audit trail of one order, oldest first: payment_events and the delivery its status claim carries."""
        oid = parse_order_id(order_id)
        claim = None if oid is None else self.claims.find_one({"_id": oid}, {"eventId": 1, "delivery": 1})
        events = [] if claim is None or claim.get("delivery") is None else [{"_id": claim["eventId"], **claim["delivery"]}]
        events.extend(self.events.find({"orderId": order_id}))
        return sorted(events, key=lambda event: event["receivedAt"])  # stable: the claim's first within one millisecond

    @unavailable_on_error
    def ping(self) -> None:
        self.db.command("ping")

    # --- Support: read-only views for `eventi order show` / `order find` ------------------------

    @unavailable_on_error
    def claim_for(self, order_id: str) -> dict[str, Any] | None:
        """The status claim that decided the order, or None while no result was decided."""
        oid = parse_order_id(order_id)
        return None if oid is None else self.claims.find_one({"_id": oid}, {"delivery": 0})  # events_for shows it

    @unavailable_on_error
    def orders_by_reference(self, reference: str, limit: int = 20) -> list[dict[str, Any]]:
        """The orders with this short reference (orders stored since it exists), newest first."""
        return list(self.orders.find({"reference": reference.upper()}).sort("createdAt", -1).limit(limit))

    @unavailable_on_error
    def orders_for_phone(self, phone: str, limit: int = 20) -> list[dict[str, Any]]:
        """The most recent orders of a phone number (stored as 254…), newest first."""
        return list(self.orders.find({"phone": phone}).sort("createdAt", -1).limit(limit))
