"""docs/settings.md's table stays true: every setting the code reads from the environment is in it."""
import re

import pytest

from devstack.processes import ROOT
from eventi import config


def table_names():
    section = (ROOT / "docs" / "settings.md").read_text()
    return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", "\n".join(line.split("|")[1] for line in section.splitlines()
                                                               if line.startswith("| `"))))


def test_every_app_setting_is_in_the_settings_table():
    missing = {config.env_name(name) for name in config.DEFAULTS} - table_names()
    assert not missing, f"add to docs/settings.md's table: {sorted(missing)}"


def test_every_variable_gunicorn_make_run_and_the_simulator_read_is_in_the_settings_table():
    read = set()
    for path in ("eventi/server/gunicorn_conf.py", "scripts/run.sh", "eventi/payhero/simulator/__main__.py"):
        text = (ROOT / path).read_text()
        read |= set(re.findall(r"\b((?:EVENTI|PROMETHEUS)_[A-Z0-9_]+)", text))
    missing = read - table_names()
    assert not missing, f"add to docs/settings.md's table: {sorted(missing)}"


def test_a_cache_shorter_than_the_longest_hold_is_refused(tmp_path):
    with pytest.raises(config.ConfigError, match="EVENTI_STATUS_CACHE_TTL"):
        config.load({"VAR_DIR": str(tmp_path)}, environ={"EVENTI_STATUS_CACHE_TTL": "60"})
    assert config.load({"VAR_DIR": str(tmp_path)}, environ={}).status_cache_ttl > 120
