"""The real `eventi` console script as a process: --help and --version load and write nothing, and a
command that fails prints one line to stderr and exits with its documented code (docs/operations.md)."""
import os
import subprocess
from importlib.metadata import version

from devstack.processes import ROOT, free_port
from eventi.cli.app_commands import EXIT_INVALID_SETTING, EXIT_REFUSED, EXIT_UNREACHABLE

EVENTI = str(ROOT / ".venv" / "bin" / "eventi")


def environment(**settings):
    """No EVENTI_* or PayHero setting from outside; this checkout's eventi first on the path."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTI_", "PAYHERO_", "PUBLIC_BASE"))}
    return {**inherited, "PYTHONPATH": str(ROOT), **settings}


def start(args, cwd, **settings):
    return subprocess.Popen([EVENTI, *args], cwd=cwd, env=environment(**settings), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process):
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def test_help_and_version_load_nothing_and_write_nothing(tmp_path):
    # production without a secret would stop any app load (exit 4); a development load writes var/secret_key
    asks = [["--help"], ["--version"], ["events", "load", "--help"], ["order", "show", "--help"]]
    folders = [tmp_path / str(i) for i in range(len(asks))]
    running = []
    for args, folder in zip(asks, folders, strict=True):
        folder.mkdir()
        running.append(start(args, folder, EVENTI_ENV="production"))
    for args, folder, process in zip(asks, folders, running, strict=True):
        code, out, err = finish(process)
        assert (code, err) == (0, ""), args
        assert out.startswith(f"eventi {version('eventi')}" if args == ["--version"] else "Usage: eventi"), args
        assert list(folder.iterdir()) == [], args


def test_commands_with_the_store_down_print_one_line_and_exit_3(tmp_path):
    # The URI's own timeout (options in the URI win) stands in for eventi's 10 s: the same refusal, sooner.
    store_down = {"EVENTI_MONGO_URI": f"mongodb://127.0.0.1:{free_port()}/eventi?serverSelectionTimeoutMS=1500",
                  "EVENTI_VAR_DIR": str(tmp_path)}
    commands = [["events", "load", str(ROOT / "eventi" / "demo_event.json")], ["create-indexes"], ["reconcile"],
                ["order", "show", "0123ABCD"], ["order", "find", "--phone", "0712345678"], ["order", "refunds"]]
    running = [start(args, tmp_path, **store_down) for args in commands]  # at once: each waits out a timeout
    for args, process in zip(commands, running, strict=True):
        code, out, err = finish(process)
        assert code == EXIT_UNREACHABLE, (args, err)
        assert err.splitlines() == [err.strip()] and "did not answer (EVENTI_MONGO_URI)" in err, (args, err)
        assert "Connection refused" in err and out == ""


def test_an_invalid_setting_is_one_line_and_exit_4(tmp_path):
    code, out, err = finish(start(["create-indexes"], tmp_path, EVENTI_NOTIFIER="carrier-pigeon"))
    assert code == EXIT_INVALID_SETTING
    assert err.splitlines() == ["eventi: invalid setting: EVENTI_NOTIFIER must be one of hub, per-request"]


def test_a_refused_input_exits_1_and_a_usage_error_2(tmp_path, mongo_server):
    (tmp_path / "event.json").write_text('{"id": "x"}')
    settings = {"EVENTI_MONGO_URI": mongo_server.uri, "EVENTI_VAR_DIR": str(tmp_path / "var")}
    refused = finish(start(["events", "load", "event.json"], tmp_path, **settings))
    assert refused[0] == EXIT_REFUSED and refused[2].startswith("Error: event.json not loaded:")
    missing = finish(start(["order", "show", "0" * 24], tmp_path, **settings))
    assert missing[0] == EXIT_REFUSED and missing[2] == f"Error: no order {'0' * 24}\n"
    assert finish(start(["no-such-command"], tmp_path))[0] == 2
