"""Settings: defaults, the EVENTI_ environment, and checks made at start-up."""
import os
import secrets
from pathlib import Path

DEFAULTS = {
    "ENV": "development",
    "SECRET_KEY": None,
    "MONGO_URI": "mongodb://127.0.0.1:27017/eventi",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "NOTIFIER": "hub",
    "VAR_DIR": "var",
    "WAIT_DEFAULT_SECONDS": 60,
    "WAIT_MAX_SECONDS": 120,
    "STATUS_CACHE_TTL": 60,
    "RECHECK_SECONDS": 2.0,
    "MAX_WAITS_PER_ORDER": 20,
    "MAX_WAITS_PER_WORKER": 10_000,
    "LOG_FORMAT": "text",
    "LOG_LEVEL": "INFO",
    "MAX_CONTENT_LENGTH": 64 * 1024,
}
"""Every setting, keyed without its EVENTI_ prefix; the README's table lists them."""

NOTIFIER_MODES = ("hub", "per-request")
ENVIRONMENTS = ("development", "test", "production")


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the message names it."""


def load(overrides=None, environ=os.environ):
    """Return the settings: defaults, then EVENTI_* variables, then overrides."""
    settings = dict(DEFAULTS)
    for name, default in DEFAULTS.items():
        raw = environ.get(f"EVENTI_{name}")
        if raw is not None and raw != "":
            settings[name] = _coerce(name, raw, default)
    settings.update(overrides or {})
    _check(settings)
    if not settings["SECRET_KEY"]:
        settings["SECRET_KEY"] = _dev_secret(Path(settings["VAR_DIR"]))
    return settings


def _coerce(name, raw, default):
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        try:
            return type(default)(raw)
        except ValueError:
            raise ConfigError(f"EVENTI_{name} must be a number, got {raw!r}") from None
    return raw


def _check(settings):
    if settings["ENV"] not in ENVIRONMENTS:
        raise ConfigError(f"EVENTI_ENV must be one of {', '.join(ENVIRONMENTS)}")
    if settings["NOTIFIER"] not in NOTIFIER_MODES:
        raise ConfigError(f"EVENTI_NOTIFIER must be one of {', '.join(NOTIFIER_MODES)}")
    if settings["LOG_FORMAT"] not in ("text", "json"):
        raise ConfigError("EVENTI_LOG_FORMAT must be text or json")
    if not 1 <= settings["WAIT_DEFAULT_SECONDS"] <= settings["WAIT_MAX_SECONDS"]:
        raise ConfigError("EVENTI_WAIT_DEFAULT_SECONDS must be between 1 and EVENTI_WAIT_MAX_SECONDS")
    if settings["MAX_WAITS_PER_ORDER"] < 1 or settings["MAX_WAITS_PER_WORKER"] < 1:
        raise ConfigError("EVENTI_MAX_WAITS_PER_ORDER and EVENTI_MAX_WAITS_PER_WORKER must be at least 1")
    if settings["RECHECK_SECONDS"] <= 0:
        raise ConfigError("EVENTI_RECHECK_SECONDS must be positive")
    if settings["ENV"] == "production" and len(settings["SECRET_KEY"] or "") < 32:
        raise ConfigError("EVENTI_SECRET_KEY must be set (32+ characters) when EVENTI_ENV=production")


def _dev_secret(var_dir):
    """Create the development secret once under var/, so every worker and restart agree."""
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    tmp = var_dir / f".secret_key.{os.getpid()}"
    tmp.write_text(secrets.token_hex(32))
    try:
        os.link(tmp, path)  # atomic: the first worker wins, the others read its key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()
