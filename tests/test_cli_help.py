"""Every `flask --app wsgi` command of eventi explains itself with --help."""
import os
import subprocess

from devstack.processes import ROOT


def test_every_command_has_help_text(app):
    runner = app.test_cli_runner()
    assert app.cli.commands, "no eventi commands registered"
    for name, command in app.cli.commands.items():
        assert (command.help or "").strip(), f"{name} needs a docstring: it is its --help"
        result = runner.invoke(args=[name, "--help"])
        assert result.exit_code == 0, result.output
        first_words = " ".join(command.help.split()[:5])
        assert first_words in " ".join(result.output.split())  # click wraps the text


def test_flask_cli_lists_the_commands(app, settings, tmp_path):
    env = {**os.environ, "EVENTI_ENV": "test", "EVENTI_SECRET_KEY": settings["SECRET_KEY"], "EVENTI_VAR_DIR": str(tmp_path)}
    listing = subprocess.run([str(ROOT / ".venv" / "bin" / "flask"), "--app", "wsgi", "--help"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    for name in app.cli.commands:
        assert name in listing.stdout
