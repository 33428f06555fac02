"""`flask --app wsgi ...` commands for what ops do by hand."""
import click
from flask import current_app


def init_app(app):
    app.cli.add_command(create_indexes)
    app.cli.add_command(reconcile)


@click.command("create-indexes")
def create_indexes():
    """Create the MongoDB indexes eventi needs (safe to run again)."""
    current_app.extensions["eventi"].store.ensure_indexes()
    click.echo("indexes ready")


@click.command("reconcile")
@click.option("--limit", default=500, show_default=True, help="Most orders to check in this run.")
def reconcile(limit):
    """Ask PayHero about orders pending past EVENTI_RECONCILE_AFTER_SECONDS and apply the answers.

    Answers go through the callback code path (audited, idempotent, published to waiters);
    orders unanswered past EVENTI_RECONCILE_GIVE_UP_SECONDS fail with "no_callback".
    """
    report = current_app.extensions["eventi"].reconciler().run_once(limit)
    click.echo(f"checked={report.checked} applied={report.applied} unanswered={report.unanswered} errors={report.errors}")
