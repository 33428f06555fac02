"""long-poll.js's own tests (tests/js/, node's built-in runner) as part of the Python suite."""
import shutil
import subprocess

import pytest

from tests.support.processes import ROOT


def test_long_poll_js_node_tests():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: long-poll.js's tests (tests/js/) need Node 18+")
    result = subprocess.run([node, "--test", str(ROOT / "tests" / "js")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
