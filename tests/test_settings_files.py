"""Secrets from files, the Docker and Kubernetes convention: X_FILE names a file holding X's value
(tests/test_container_runs.py starts the image's command with its secrets so)."""
import pytest

from eventi import config


def test_a_setting_is_read_from_the_file_its_file_variable_names(tmp_path):
    (tmp_path / "key").write_text("k" * 40 + "\n")
    (tmp_path / "token").write_text("dG9rZW4=")
    (tmp_path / "uri").write_text("mongodb://user:p%40ss@db:27017/shop\r\n")
    settings = config.load({"VAR_DIR": str(tmp_path)}, environ={
        "EVENTI_SECRET_KEY_FILE": str(tmp_path / "key"), "EVENTI_MONGO_URI_FILE": str(tmp_path / "uri"),
        "PAYHERO_BASE_URL": "https://payhero.example", "PAYHERO_AUTH_TOKEN_FILE": str(tmp_path / "token"),
        "PAYHERO_CHANNEL_ID": "7"})
    assert settings.secret_key == "k" * 40  # the file's one trailing newline is not part of it
    assert (settings.mongo_uri, settings.payhero_auth_token) == ("mongodb://user:p%40ss@db:27017/shop", "dG9rZW4=")
    assert not (tmp_path / "secret_key").exists()


def test_a_setting_set_both_ways_is_refused(tmp_path):
    (tmp_path / "key").write_text("k" * 40)
    with pytest.raises(config.ConfigError, match="^EVENTI_SECRET_KEY and EVENTI_SECRET_KEY_FILE are both set"):
        config.load({"VAR_DIR": str(tmp_path)},
                    environ={"EVENTI_SECRET_KEY": "x" * 40, "EVENTI_SECRET_KEY_FILE": str(tmp_path / "key")})


@pytest.mark.parametrize("make", [lambda folder: folder / "missing", lambda folder: folder])
def test_a_file_that_cannot_be_read_is_refused_naming_the_variable(tmp_path, make):
    with pytest.raises(config.ConfigError, match="^PAYHERO_AUTH_TOKEN_FILE must name a readable file"):
        config.load({"VAR_DIR": str(tmp_path)}, environ={"PAYHERO_AUTH_TOKEN_FILE": str(make(tmp_path))})


def test_only_the_secrets_and_addresses_come_from_files(tmp_path):
    (tmp_path / "notifier").write_text("per-request")
    settings = config.load({"VAR_DIR": str(tmp_path)}, environ={"EVENTI_NOTIFIER_FILE": str(tmp_path / "notifier")})
    assert settings.notifier == "hub"
    assert set(config.FROM_FILES) <= set(config.DEFAULTS)
