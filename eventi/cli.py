"""`flask --app wsgi ...` (or `eventi ...`) commands for what ops and support do by hand."""
import json

import click
from flask import current_app
from flask.cli import AppGroup

from . import event_file, phones
from .services import support


def init_app(app):
    app.cli.add_command(create_indexes)
    app.cli.add_command(reconcile)
    app.cli.add_command(events)
    app.cli.add_command(order)


@click.command("create-indexes")
def create_indexes():
    """Create the MongoDB indexes eventi needs (safe to run again)."""
    parts = current_app.extensions["eventi"]
    parts.store.ensure_indexes()
    parts.tickets.ensure_indexes()
    parts.keys.ensure_indexes()
    click.echo("indexes ready")


@click.command("reconcile")
@click.option("--limit", default=500, show_default=True, help="Most orders to check in this run.")
def reconcile(limit):
    """Ask PayHero about orders pending past EVENTI_RECONCILE_AFTER_SECONDS and apply the answers.

    Answers go through the callback code path (audited, idempotent, published to waiters);
    orders unanswered past EVENTI_RECONCILE_GIVE_UP_SECONDS fail with "no_callback". Ticket
    releases interrupted midway are finished.
    """
    report = current_app.extensions["eventi"].reconciler().run_once(limit)
    click.echo(f"checked={report.checked} applied={report.applied} unanswered={report.unanswered} "
               f"errors={report.errors} releases_finished={report.releases_finished}")


@click.group("order", cls=AppGroup)
def order():
    """Look up orders for support: an order and its PayHero deliveries, or a phone number's orders."""


@order.command("show")
@click.argument("order_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
def order_show(order_id, as_json):
    """Print an order, its status claim and every PayHero delivery in time order (phones and e-mails masked)."""
    report = support.order_report(current_app.extensions["eventi"].store, order_id)
    if report is None:
        raise click.ClickException(f"no order {order_id}")
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    o = report["order"]
    click.echo(f"order {o['id']}  {o['status']}  {o.get('amount')} KES  event {o.get('eventId')}")
    for key in ("createdAt", "updatedAt", "phone", "email", "name", "mpesaReceipt", "failureReason",
                "resultCode", "payheroReference", "checkoutRequestId", "pushedAt"):
        if o.get(key) is not None:
            click.echo(f"  {key:<18} {o[key]}")
    claim = report["statusClaim"]
    if claim is None:
        click.echo("status claim: none (no result decided yet)")
    else:
        detail = claim.get("mpesaReceipt") or claim.get("failureReason") or ""
        click.echo(f"status claim: {claim['status']} {detail} at {claim['claimedAt']} by delivery {claim['eventId']}")
    click.echo(f"deliveries: {len(report['deliveries'])}, oldest first")
    for event in report["deliveries"]:
        decided = "  <- decided the status" if claim and event["id"] == claim.get("eventId") else ""
        summary = " ".join(f"{k}={v}" for k, v in (event.get("summary") or {}).items() if v not in (None, ""))
        click.echo(f"  {event['receivedAt']}  {event['source']:<9} {event['id']}  {summary}{decided}")
        if event.get("raw"):
            click.echo(f"    raw: {event['raw']}")


@order.command("find")
@click.option("--phone", required=True, help="The number in any spelling: 07…, 01…, 2547…, +2547….")
@click.option("--limit", default=20, show_default=True, help="Most orders to list.")
def order_find(phone: str, limit: int) -> None:
    """List the most recent orders of a phone number, newest first."""
    stored = phones.normalise(phone)
    if stored is None:
        raise click.BadParameter(phones.MESSAGE, param_hint="--phone")
    orders = support.recent_orders(current_app.extensions["eventi"].store, stored, limit)
    if not orders:
        click.echo("no orders for that number")
    for o in orders:
        detail = o.get("mpesaReceipt") or o.get("failureReason") or ""
        click.echo(f"{o['id']}  {o['createdAt']}  {o['status']:<9} {o.get('amount')} KES  {o.get('eventId')}  {detail}".rstrip())


@click.group("events", cls=AppGroup)
def events():
    """Events and their ticket types."""


@events.command("load")
@click.argument("file", type=click.Path(dir_okay=False))
def load(file):
    """Create or update the events described in FILE (JSON, or YAML for .yaml/.yml).

    FILE holds one event or a list of them: id (a slug), name, startsAt (ISO 8601 with a time zone),
    venue, currency (KES), ticketTypes (id, name, price in whole shillings, capacity, maxPerOrder).
    Nothing is loaded unless the whole file is valid; each problem is printed with its place.
    """
    try:
        documents = event_file.read(file)
    except event_file.EventFileError as exc:
        raise click.ClickException(f"{file} not loaded:\n{exc}") from None
    store = current_app.extensions["eventi"].events
    for document in documents:
        created = store.save(document)
        types = ", ".join(f"{t['id']} KES {t['price']:,} x {t['capacity']:,}" for t in document["ticketTypes"])
        click.echo(f"event {document['_id']} {'created' if created else 'updated'}: {document['name']} ({types})")
