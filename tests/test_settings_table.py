"""The README's settings table stays true: every setting the code reads from the environment is in it."""
import re

import pytest

from devstack.processes import ROOT
from eventi import config


def table_names():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", "\n".join(line.split("|")[1] for line in section.splitlines()
                                                               if line.startswith("| `"))))


def test_every_app_setting_is_in_the_readme_table():
    missing = {config.env_name(name) for name in config.DEFAULTS} - table_names()
    assert not missing, f"add to README's settings table: {sorted(missing)}"


def test_every_variable_gunicorn_make_run_and_the_simulator_read_is_in_the_readme_table():
    read = set()
    for path in ("eventi/gunicorn_conf.py", "scripts/run.sh", "eventi/simulator/__main__.py"):
        text = (ROOT / path).read_text()
        read |= set(re.findall(r"\b((?:EVENTI|PROMETHEUS)_[A-Z0-9_]+)", text))
    missing = read - table_names()
    assert not missing, f"add to README's settings table: {sorted(missing)}"


def test_a_cache_shorter_than_the_longest_hold_is_refused(tmp_path):
    with pytest.raises(config.ConfigError, match="EVENTI_STATUS_CACHE_TTL"):
        config.load({"VAR_DIR": str(tmp_path)}, environ={"EVENTI_STATUS_CACHE_TTL": "60"})
    assert config.load({"VAR_DIR": str(tmp_path)}, environ={}).status_cache_ttl > 120
