"""The `eventi` command (console script, or `python -m eventi`): serve, the app's commands, the simulator.

`eventi create-indexes`, `eventi reconcile`, `eventi events load` and `eventi order show|find|refunds` are
the app's own commands (eventi/cli/app_commands.py, also `flask --app wsgi …` in a checkout); `serve` runs gunicorn with
the packaged config, `simulator` the local PayHero simulator. All read the same EVENTI_* environment, and
only when a command runs: `--help` and `--version` load no app, read no setting and write nothing.
"""
import os
import sys
from collections.abc import Mapping

import click
from flask import Flask
from flask.cli import ScriptInfo


def _load_app() -> Flask:
    from ..wsgi import app  # patches gevent first; an invalid setting exits 4 with one line naming it

    return app


class _WithAppCommands(click.Group):
    """Its own commands, then the app's (eventi/cli/app_commands.py); the app itself is loaded by the one that runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_app_commands()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return super().get_command(ctx, name) or _app_commands().get(name)


def _app_commands() -> Mapping[str, click.Command]:
    from gevent import monkey

    monkey.patch_all()  # as eventi.wsgi does, before eventi.cli.app_commands's imports (Flask, pymongo, redis-py) take sockets
    from .app_commands import commands

    return {command.name: command for command in commands() if command.name}


@click.group(cls=_WithAppCommands, context_settings={"obj": ScriptInfo(create_app=_load_app, set_debug_flag=False)})
@click.version_option(package_name="eventi", message="%(prog)s %(version)s")
def main() -> None:
    """eventi: instant M-Pesa payment status. Settings come from EVENTI_* variables (docs/settings.md); exit
    codes in docs/operations.md ("Exit codes of the commands")."""


@main.command("serve", context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                         "help_option_names": []})
@click.argument("gunicorn_args", nargs=-1, type=click.UNPROCESSED)
def serve(gunicorn_args: tuple[str, ...]) -> None:
    """Run gunicorn with eventi's gevent workers on EVENTI_BIND; other arguments go to gunicorn."""
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:eventi.server.gunicorn_conf", *gunicorn_args, "eventi.wsgi:app"]
    os.execv(sys.executable, argv)


@main.command("simulator", context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                             "help_option_names": []})
@click.argument("simulator_args", nargs=-1, type=click.UNPROCESSED)
def simulator(simulator_args: tuple[str, ...]) -> None:
    """Run the local PayHero simulator (--port, --delay, --slow; --help for more)."""
    from ..payhero.simulator.__main__ import main as run_simulator

    run_simulator(list(simulator_args))
