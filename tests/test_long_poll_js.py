"""long-poll.js's own tests (tests/js/, node's built-in runner) as part of the Python suite."""
import shutil
import subprocess

from devstack.processes import ROOT


def test_long_poll_js_node_tests():
    node = shutil.which("node")
    assert node, "node is not installed: `make deps` installs it (long-poll.js's tests need Node 18+)"
    result = subprocess.run([node, "--test", str(ROOT / "tests" / "js")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
