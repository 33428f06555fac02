"""`flask --app wsgi ...` (or `eventi ...`) commands for what ops and support do by hand.

A command that fails prints one line to stderr and exits with one of the EXIT_* codes (docs/operations.md,
"Commands"); importing this module loads no app and reads no setting (`eventi --help` lists these).
"""
import functools
import json
import logging
import re
from collections.abc import Callable
from importlib import resources
from typing import Any, ParamSpec, TypeVar

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from ..config import APP_LOAD_ERROR
from ..domain import event_file, phones
from ..domain.text import printable, printable_json
from ..errors import StoreUnavailable
from ..runtime import current_runtime
from ..services import support
from ..services.manual_payment import ManualPayment

REFERENCE = re.compile(r"^[0-9A-Fa-f]{8}$")
"""An order reference as the payment page shows it (eventi.domain.models.short_reference)."""
RECEIPT = re.compile(r"^[0-9A-Za-z]{10}$")
"""An M-Pesa receipt (transaction id), as `order confirm-manual` takes it."""


EXIT_REFUSED = 1
"""The input is invalid or names nothing (an event file with problems, no such order): click's own code."""
EXIT_USAGE = 2
"""An unknown command or option, a missing argument: click's own code."""
EXIT_UNREACHABLE = 3
"""The store (EVENTI_MONGO_URI) or Redis did not answer: nothing was done, or part of it (run it again)."""
EXIT_INVALID_SETTING = APP_LOAD_ERROR
"""A setting is missing or invalid (eventi/config.py): the line names it."""
EXIT_BUG = 5
"""Anything else: a bug. The line names the exception; with EVENTI_LOG_LEVEL=DEBUG its traceback follows."""

P = ParamSpec("P")
R = TypeVar("R")


class Unreachable(click.ClickException):
    """The store or Redis did not answer: click prints the one line."""

    exit_code = EXIT_UNREACHABLE


class Bug(click.ClickException):
    """Anything a command did not expect: click prints the one line."""

    exit_code = EXIT_BUG


def one_line_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn what a command raises into one line and an EXIT_* code instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        store_log = logging.getLogger("eventi.storage.order_store")
        if not store_log.isEnabledFor(logging.DEBUG):  # its warning would repeat the line printed below
            store_log.setLevel(logging.ERROR)
        try:
            return command(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except (StoreUnavailable, PyMongoError) as exc:
            raise Unreachable(f"the store did not answer (EVENTI_MONGO_URI): {_cause(exc)}") from None
        except RedisError as exc:
            raise Unreachable(f"Redis did not answer (EVENTI_REDIS_URL): {_cause(exc)}") from None
        except Exception as exc:
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                logging.getLogger(__name__).exception("command failed")
            raise Bug(f"unexpected {_cause(exc)} (a bug: please report it)") from None

    return wrapper


def _cause(exc: BaseException) -> str:
    """The driver's error behind exc, on one line: its class and the first part of its message (pymongo's
    server-selection message goes on with the whole topology)."""
    cause = exc.__cause__ or exc
    text = printable(" ".join(str(cause).split(", Timeout:")[0].split()))
    return f"{type(cause).__name__}: {text[:300]}" if text else type(cause).__name__


def say(line: str) -> None:
    """Print a line holding stored text, unprintable characters escaped (ESC as \\x1b, U+202E as
    \\u202e): a name or a PayHero field cannot move the cursor, recolour or rewrite the terminal."""
    click.echo(printable(line))


def init_app(app: Flask) -> None:
    for command in commands():
        app.cli.add_command(command)


def commands() -> list[click.Command]:
    """The app's commands: they load the app (and its settings) only when one runs, not for --help."""
    return [create_indexes, reconcile, events, order]


@click.command("create-indexes")
@with_appcontext
@one_line_errors
def create_indexes() -> None:
    """Create the MongoDB indexes eventi needs (safe to run again)."""
    runtime = current_runtime()
    runtime.store.ensure_indexes()
    runtime.tickets.ensure_indexes()
    runtime.keys.ensure_indexes()
    runtime.manual_store.ensure_indexes()
    click.echo("indexes ready")


@click.command("reconcile")
@click.option("--limit", default=500, show_default=True, help="Most orders to check in this run.")
@with_appcontext
@one_line_errors
def reconcile(limit: int) -> None:
    """Ask PayHero about orders pending past EVENTI_RECONCILE_AFTER_SECONDS (pushed or not) and apply the answers.

    Answers go through the callback code path (audited, idempotent, published to waiters). Past
    EVENTI_RECONCILE_GIVE_UP_SECONDS an order fails with "no_callback" only on an answer (FAILED, a 404,
    or no PayHero reference to ask about); errors, timeouts and QUEUED are asked again with backoff
    ("overdue" counts those past 5 tries). Late payments and ticket releases a failure left half done
    are finished, and up to 1000 idempotency keys past their 24 h are removed.
    """
    report = current_runtime().reconciler().run_once(limit)
    click.echo(f"checked={report.checked} rechecked={report.rechecked} applied={report.applied} "
               f"unanswered={report.unanswered} "
               f"errors={report.errors} overdue={report.overdue} late_followed={report.late_followed} "
               f"releases_finished={report.releases_finished} keys_removed={report.keys_removed}")


@click.group("order", cls=AppGroup)
def order() -> None:
    """Look up orders for support: an order and its PayHero deliveries, a phone number's orders, refunds due."""


@order.command("show")
@click.argument("order_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
@one_line_errors
def order_show(order_id: str, as_json: bool) -> None:
    """Print an order, its status claim and every PayHero delivery in time order (phones and e-mails masked).

    ORDER_ID is the 24-character orderId, the 8-character order reference the payment page shows, or the
    8-digit account number it gives for a Paybill payment.
    """
    runtime = current_runtime()
    store = runtime.store
    by_account = runtime.manual_store.order_id_for(order_id) if order_id.isdigit() else None
    if by_account is not None:
        order_id = by_account
    elif REFERENCE.match(order_id):
        matches = support.orders_with_reference(store, order_id)
        if len(matches) > 1:
            _list_orders(matches)
            raise click.ClickException(f"{len(matches)} orders have reference {order_id.upper()}: show one by its id")
        order_id = matches[0]["id"] if matches else order_id
    report = support.order_report(store, order_id)
    if report is None:
        raise click.ClickException(printable(f"no order {order_id}"))
    if as_json:
        click.echo(printable_json(json.dumps(report, indent=2, ensure_ascii=False)))
        return
    o = report["order"]
    say(f"order {o['id']}  {o['status']}  {o.get('amount')} KES  event {o.get('eventId')}")
    for key in ("createdAt", "updatedAt", "phone", "email", "name", "mpesaReceipt", "failureReason",
                "resultCode", "payheroReference", "checkoutRequestId", "pushedAt", "latePayment", "refundReason",
                "unconfirmedPayment", "accountNumber", "secondPayments"):
        if o.get(key) is not None:
            say(f"  {key:<18} {o[key]}")
    claim = report["statusClaim"]
    if claim is None:
        say("status claim: none (no result decided yet)")
    else:
        detail = claim.get("mpesaReceipt") or claim.get("failureReason") or ""
        say(f"status claim: {claim['status']} {detail} at {claim['claimedAt']} by delivery {claim['eventId']}")
    say(f"deliveries: {len(report['deliveries'])}, oldest first")
    for event in report["deliveries"]:
        decided = "  <- decided the status" if claim and event["id"] == claim.get("eventId") else ""
        summary = " ".join(f"{k}={v}" for k, v in (event.get("summary") or {}).items() if v not in (None, ""))
        say(f"  {event['receivedAt']}  {event['source']:<9} {event['id']}  {summary}{decided}")
        if event.get("raw"):
            say(f"    raw: {event['raw']}")


@order.command("find")
@click.option("--phone", help="The number in any spelling: 07…, 01…, 2547…, +2547….")
@click.option("--reference", help="The 8-character order reference the payment page shows.")
@click.option("--limit", default=20, show_default=True, help="Most orders to list.")
@one_line_errors
def order_find(phone: str | None, reference: str | None, limit: int) -> None:
    """List the most recent orders of a phone number, or those with an order reference, newest first."""
    store = current_runtime().store
    if (phone is None) == (reference is None):
        raise click.UsageError("give --phone or --reference")
    if reference is not None:
        if not REFERENCE.match(reference):
            raise click.BadParameter("8 characters of 0-9 and A-F, as the payment page shows it", param_hint="--reference")
        orders = support.orders_with_reference(store, reference, limit)
        if not orders:
            say("no orders with that reference")
        _list_orders(orders)
        return
    assert phone is not None  # the usage check above: one of the two is given
    stored = phones.normalise(phone)
    if stored is None:
        raise click.BadParameter(phones.MESSAGE, param_hint="--phone")
    orders = support.recent_orders(store, stored, limit)
    if not orders:
        say("no orders for that number")
    _list_orders(orders)


@order.command("refunds")
@click.option("--limit", default=100, show_default=True, help="Most orders to list.")
@one_line_errors
def order_refunds(limit: int) -> None:
    """List the orders a person must act on, newest first: paid but without tickets (refund_needed: the
    payment came after the order had failed and its tickets were gone, or the amount differed), and paid
    callbacks strict mode could not confirm (unconfirmed payment: check with PayHero); then Paybill payments that
    completed no order (unknown_account, amount_mismatch, already_paid), and second payments of an order paid
    already (the shopper paid twice)."""
    runtime = current_runtime()
    orders = support.orders_needing_attention(runtime.store, limit)
    manual = support.manual_payments_to_refund(runtime.manual_store, limit)
    twice = support.orders_paid_twice(runtime.manual_store, limit)
    if not orders and not manual and not twice:
        click.echo("no orders need a refund or a check")
    for o in orders:
        why = o.get("refundReason") or ("unconfirmed payment" if o.get("unconfirmedPayment") else "")
        click.echo(f"{o['id']}  {o.get('reference', '')}  {o['updatedAt']}  {o['status']:<13} {o.get('amount')} KES  "
                   f"receipt {o.get('mpesaReceipt') or '-'}  {why}".rstrip())
    for p in manual:  # Paybill payments that completed no order (docs/operations.md, "Manual payment")
        say(f"{p.get('orderId') or '-':<24}  account {p['account'] or '-'}  {p['receivedAt']}  manual payment "
            f"{p['amount']} KES  receipt {p['id']}  {p['outcome']}")
    for o in twice:  # paid twice: the order keeps its first payment, each other one is refunded
        for extra in o["secondPayments"]:
            say(f"{o['id']}  {o.get('reference', '')}  {o['updatedAt']}  second payment {extra.get('amount')} KES  "
                f"receipt {extra['receipt']}  (the order holds {o.get('mpesaReceipt')})")


@order.command("confirm-manual")
@click.argument("account")
@click.argument("receipt")
@click.argument("amount", type=click.IntRange(min=1))
def order_confirm_manual(account: str, receipt: str, amount: int) -> None:
    """Apply a Paybill payment seen on the M-Pesa statement: ACCOUNT the account number the shopper typed, RECEIPT
    M-Pesa's transaction id, AMOUNT in whole shillings.

    The same path as a C2B confirmation (docs/operations.md, "Manual payment"): the right amount for a pending
    order completes it, for a failed or cancelled one it is a late payment; an unknown account number, another
    amount or an order paid already complete nothing and are listed by `eventi order refunds`. Running it
    again for the same receipt changes nothing.
    """
    runtime = current_runtime()
    paybill = runtime.settings.manual_paybill
    if paybill is None:
        raise click.ClickException("EVENTI_MANUAL_PAYBILL is not set: there is no Paybill to confirm a payment to")
    if not RECEIPT.match(receipt):
        raise click.BadParameter("M-Pesa's transaction id: 10 letters and digits", param_hint="RECEIPT")
    payment = ManualPayment(receipt=receipt.upper(), account=account, amount=amount, paybill=paybill,
                            raw=f"eventi order confirm-manual {account} {receipt.upper()} {amount}")
    done = runtime.manual.confirm(payment, source="manual")
    say(f"{payment.receipt}: {done.outcome}{' (confirmed before)' if done.duplicate else ''}"
        f"{f'  order {done.order_id}' if done.order_id else ''}")


def _list_orders(orders: list[dict[str, Any]]) -> None:
    for o in orders:
        detail = o.get("mpesaReceipt") or o.get("failureReason") or ""
        line = f"{o['id']}  {o['createdAt']}  {o['status']:<9} {o.get('amount')} KES  {o.get('eventId')}  {detail}"
        say(line.rstrip())


@click.group("events", cls=AppGroup)
def events() -> None:
    """Events and their ticket types."""


@events.command("load")
@click.argument("file", type=click.Path(dir_okay=False))
@one_line_errors
def load(file: str) -> None:
    """Create or update the events described in FILE (JSON, or YAML for .yaml/.yml).

    FILE holds one event or a list of them: id (a slug), name, startsAt (ISO 8601 with a time zone),
    venue, currency (KES), ticketTypes (id, name, price in whole shillings, capacity, maxPerOrder).
    Nothing is loaded unless the whole file is valid; each problem is printed with its place.
    """
    _load(file)


@events.command("demo")
@one_line_errors
def demo() -> None:
    """Create or update the demo event of the checkout page at /events/demo/checkout (the packaged
    eventi/demo_event.json: `make run` and docker/compose.dev.yml load it)."""
    with resources.as_file(resources.files("eventi") / "demo_event.json") as path:
        _load(str(path))


def _load(file: str) -> None:
    try:
        documents = event_file.read(file)
    except event_file.EventFileError as exc:
        raise click.ClickException(not_loaded(file, exc.problems)) from None
    store = current_runtime().events
    for document in documents:
        created = store.save(document)
        types = ", ".join(f"{t['id']} KES {t['price']:,} x {t['capacity']:,}" for t in document["ticketTypes"])
        say(f"event {document['_id']} {'created' if created else 'updated'}: {document['name']} ({types})")


def not_loaded(file: str, problems: list[str]) -> str:
    """The refusal of an event file: one line for one problem, else a line per problem; escaped, as a
    problem may quote the file (an unknown key, a YAML snippet)."""
    head, lines = f"{printable(file)} not loaded:", [printable(problem) for problem in problems]
    return f"{head} {lines[0]}" if len(lines) == 1 else "\n".join([head, *lines])
