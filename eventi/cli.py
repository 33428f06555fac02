"""`flask --app wsgi ...` commands for what ops do by hand."""
import click
from flask import current_app


def init_app(app):
    app.cli.add_command(create_indexes)


@click.command("create-indexes")
def create_indexes():
    """Create the MongoDB indexes eventi needs (safe to run again)."""
    current_app.extensions["eventi"].store.ensure_indexes()
    click.echo("indexes ready")
