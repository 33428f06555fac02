"""`flask --app wsgi ...` commands for what ops do by hand."""
import click
from flask import current_app
from flask.cli import AppGroup

from . import event_file


def init_app(app):
    app.cli.add_command(create_indexes)
    app.cli.add_command(reconcile)
    app.cli.add_command(events)


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
