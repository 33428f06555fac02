"""Settings: defaults, the EVENTI_ environment (or files named by X_FILE), and checks made at start-up.

load() reads, checks and normalises every setting and returns them as one frozen, typed Settings;
an invalid one is a ConfigError whose message starts with the variable's name. This module imports
the standard library only: gunicorn's master reads it before any fork.
"""
import os
import re
import secrets
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .logs import startup_error
from .storage import redis_url

DEFAULTS: dict[str, Any] = {
    "ENV": "development",
    "SECRET_KEY": None,
    "MONGO_URI": "mongodb://127.0.0.1:27017/eventi",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "NOTIFIER": "hub",
    "VAR_DIR": "var",
    "WAIT_DEFAULT_SECONDS": 60,
    "WAIT_MAX_SECONDS": 120,
    "STATUS_CACHE_TTL": 300,
    "RECHECK_SECONDS": 2.0,
    "STORE_MAX_READS": 32,
    "MAX_WAITS_PER_ORDER": 20,
    "MAX_WAITS_PER_WORKER": 10_000,
    "HEADER_TIMEOUT_SECONDS": 10.0,
    "LOG_FORMAT": "text",
    "LOG_LEVEL": "INFO",
    "METRICS_BIND": None,
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "PROXY_COUNT": 0,
    "PAYHERO_BASE_URL": None,
    "PAYHERO_AUTH_TOKEN": None,
    "PAYHERO_CHANNEL_ID": None,
    "PUBLIC_BASE_URL": None,
    "PUSH_TIMEOUT": 8.0,
    "PUSH_LIMIT": 3,
    "PUSH_LIMIT_WINDOW": 600,
    "RECONCILE_AFTER_SECONDS": 120,
    "RECONCILE_GIVE_UP_SECONDS": 900,
    "RECONCILE_INTERVAL_SECONDS": 0,
    "RELEASE_INTERRUPTED_AFTER_SECONDS": 30,
    "LATE_PAYMENTS": "fulfil",  # a payment after the order failed: tickets again if any are left, else refund_needed
    "PAYHERO_VERIFY_CALLBACKS": "0",
    "CORS_ORIGINS": "",
    "PROMPT_SECONDS": 60,  # M-Pesa's prompt lives about a minute (shared/payhero/result-codes.md)
    "PROMPT_HELP_SECONDS": 45,
    "SUPPORT_CONTACT": None,
    "MANUAL_PAYBILL": None,  # a Paybill number shown when the prompt fails (off when unset): docs/operations.md, "Manual payment"
    "C2B_TOKEN": None,  # the secret in the C2B confirmation URL registered for that Paybill (off when unset)
}
"""Every setting, keyed without its EVENTI_ prefix; docs/settings.md lists them."""

UNPREFIXED = ("PAYHERO_BASE_URL", "PAYHERO_AUTH_TOKEN", "PAYHERO_CHANNEL_ID", "PUBLIC_BASE_URL",
              "PAYHERO_VERIFY_CALLBACKS")
"""PayHero's settings keep the names its own documentation uses (no EVENTI_ prefix)."""


FROM_FILES = ("SECRET_KEY", "MONGO_URI", "REDIS_URL", "PAYHERO_BASE_URL", "PAYHERO_AUTH_TOKEN", "PAYHERO_CHANNEL_ID")
"""The settings that may also come from a file: X_FILE names it (Docker's and Kubernetes' secrets)."""


def env_name(name: str) -> str:
    """The environment variable that holds a setting."""
    return name if name in UNPREFIXED else f"EVENTI_{name}"


NOTIFIER_MODES = ("hub", "per-request")
ENVIRONMENTS = ("development", "test", "production")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEV_SUPPORT_CONTACT = "write to support@eventi.example (local development: set EVENTI_SUPPORT_CONTACT)"
"""What the payment page offers as a support route when EVENTI_SUPPORT_CONTACT is unset (not in production)."""
SUPPORT_CONTACT_MAX = 200
HOLD_CEILING_SECONDS = 120
"""The longest hold any setting may ask for: gunicorn's graceful_timeout (130 s) and the shipped nginx's
proxy_read_timeout on the wait route (150 s) are set above it."""
APP_LOAD_ERROR = 4
"""The exit code of an invalid setting: gunicorn's own "App failed to load", so its arbiter stops
instead of starting the worker again."""


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Every setting, checked and normalised (docs/settings.md); attributes are DEFAULTS' names in lower case."""

    env: str
    secret_key: str
    mongo_uri: str
    redis_url: str
    notifier: str
    var_dir: str
    wait_default_seconds: int
    wait_max_seconds: int
    status_cache_ttl: int
    recheck_seconds: float
    store_max_reads: int
    max_waits_per_order: int
    max_waits_per_worker: int
    header_timeout_seconds: float
    log_format: str
    log_level: str
    metrics_bind: str | None
    max_content_length: int
    proxy_count: int
    payhero_base_url: str | None
    payhero_auth_token: str | None
    payhero_channel_id: int | None
    public_base_url: str
    push_timeout: float
    push_limit: int
    push_limit_window: int
    reconcile_after_seconds: int
    reconcile_give_up_seconds: int
    reconcile_interval_seconds: int
    release_interrupted_after_seconds: int
    late_payments: str
    payhero_verify_callbacks: bool
    cors_origins: tuple[str, ...]
    prompt_seconds: int
    prompt_help_seconds: int
    support_contact: str
    manual_paybill: str | None
    c2b_token: str | None


def load(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] = os.environ) -> Settings:
    """Return the settings: defaults, then EVENTI_* variables, then overrides (keyed as DEFAULTS)."""
    settings = dict(DEFAULTS)
    for name, default in DEFAULTS.items():
        raw = _from_file_or_environment(env_name(name), environ) if name in FROM_FILES else environ.get(env_name(name))
        if raw is not None and raw != "":
            settings[name] = _coerce(name, raw, default)
    for name, value in (overrides or {}).items():
        if name not in DEFAULTS:
            raise ConfigError(f"{name} is not a setting (see config.DEFAULTS)")
        settings[name] = _coerce(name, value, DEFAULTS[name])
    if not settings["PUBLIC_BASE_URL"] and settings["ENV"] != "production":
        settings["PUBLIC_BASE_URL"] = "http://" + environ.get("EVENTI_BIND", "127.0.0.1:8000")
    _check(settings)
    _check_logs_and_addresses(settings, environ.get("EVENTI_BIND", "127.0.0.1:8000"))
    _check_payhero(settings)
    _check_page(settings)
    _check_manual(settings)
    settings["CORS_ORIGINS"] = cors_origins(settings["CORS_ORIGINS"])
    if not settings["SECRET_KEY"]:
        try:
            settings["SECRET_KEY"] = _dev_secret(Path(settings["VAR_DIR"]))
        except OSError as exc:
            raise ConfigError(f"EVENTI_VAR_DIR must be a directory eventi can write (the development secret "
                              f"goes there): {exc.strerror} for {settings['VAR_DIR']!r}") from None
    return Settings(**{name.lower(): value for name, value in settings.items()})


def _from_file_or_environment(variable: str, environ: Mapping[str, str]) -> str | None:
    """The variable's value, or the content of the file VARIABLE_FILE names (Docker's and Kubernetes'
    secrets; one trailing newline dropped). Both set is refused: which one is meant?"""
    path = environ.get(f"{variable}_FILE")
    if not path:
        return environ.get(variable)
    if environ.get(variable):
        raise ConfigError(f"{variable} and {variable}_FILE are both set: keep one")
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{variable}_FILE must name a readable file: {reason} for {path!r}") from None
    return text.removesuffix("\n").removesuffix("\r")


def positive_int(name: str, default: int, environ: Mapping[str, str] = os.environ) -> int:
    """A positive integer from the environment variable name (gunicorn's EVENTI_WORKERS and the like)."""
    raw = environ.get(name) or str(default)
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{name} must be a positive integer, got {raw!r}")
    return int(raw)


@contextmanager
def exit_on_config_error() -> Iterator[None]:
    """A ConfigError raised inside stops the process: one line naming the setting on stderr (JSON in
    JSON mode), exit code APP_LOAD_ERROR, instead of a traceback per worker."""
    try:
        yield
    except ConfigError as exc:
        print(startup_error(str(exc), os.environ.get("EVENTI_LOG_FORMAT")), file=sys.stderr, flush=True)
        raise SystemExit(APP_LOAD_ERROR) from None


def _coerce(name: str, value: object, default: object) -> Any:
    """A numeric setting as its default's type (from text, or an int where a float is expected)."""
    if not isinstance(default, (int, float)) or isinstance(default, bool):
        return value
    kind = type(default)
    if isinstance(value, (str, int, kind)) and not isinstance(value, bool):
        try:
            return kind(value)
        except ValueError:
            pass
    raise ConfigError(f"{env_name(name)} must be a {'whole ' if kind is int else ''}number, got {value!r}")


def _check(settings: dict[str, Any]) -> None:
    if settings["ENV"] not in ENVIRONMENTS:
        raise ConfigError(f"EVENTI_ENV must be one of {', '.join(ENVIRONMENTS)}")
    if settings["NOTIFIER"] not in NOTIFIER_MODES:
        raise ConfigError(f"EVENTI_NOTIFIER must be one of {', '.join(NOTIFIER_MODES)}")
    if settings["LOG_FORMAT"] not in ("text", "json"):
        raise ConfigError("EVENTI_LOG_FORMAT must be text or json")
    if not 1 <= settings["WAIT_MAX_SECONDS"] <= HOLD_CEILING_SECONDS:
        raise ConfigError(f"EVENTI_WAIT_MAX_SECONDS must be 1 to {HOLD_CEILING_SECONDS}: gunicorn's graceful_timeout "
                          "and nginx's proxy_read_timeout are set for holds up to that")
    if not 1 <= settings["WAIT_DEFAULT_SECONDS"] <= settings["WAIT_MAX_SECONDS"]:
        raise ConfigError("EVENTI_WAIT_DEFAULT_SECONDS must be between 1 and EVENTI_WAIT_MAX_SECONDS")
    if settings["STATUS_CACHE_TTL"] <= settings["WAIT_MAX_SECONDS"]:
        raise ConfigError("EVENTI_STATUS_CACHE_TTL must be longer than EVENTI_WAIT_MAX_SECONDS, "
                          "or re-waits read MongoDB")
    for name in ("MAX_WAITS_PER_ORDER", "MAX_WAITS_PER_WORKER"):
        if settings[name] < 1:
            raise ConfigError(f"EVENTI_{name} must be at least 1")
    if settings["STORE_MAX_READS"] < 1:
        raise ConfigError("EVENTI_STORE_MAX_READS must be at least 1")
    if settings["RECHECK_SECONDS"] <= 0:
        raise ConfigError("EVENTI_RECHECK_SECONDS must be positive")
    if settings["HEADER_TIMEOUT_SECONDS"] <= 0:
        raise ConfigError("EVENTI_HEADER_TIMEOUT_SECONDS must be positive")
    if not 0 <= settings["PROXY_COUNT"] <= 5:
        raise ConfigError("EVENTI_PROXY_COUNT must be 0 (no proxy) to 5: the number of proxies in front whose "
                          "X-Forwarded-For is trusted")
    if settings["ENV"] == "production" and len(settings["SECRET_KEY"] or "") < 32:
        raise ConfigError("EVENTI_SECRET_KEY must be set (32+ characters) when EVENTI_ENV=production")


def _check_logs_and_addresses(settings: dict[str, Any], bind: str) -> None:
    """Settings that used to fail late (a worker crash, a traceback at the first request) fail here."""
    level = str(settings["LOG_LEVEL"]).upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"EVENTI_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)} (any case), "
                          f"got {settings['LOG_LEVEL']!r}")
    settings["LOG_LEVEL"] = level
    mongo = urlsplit(settings["MONGO_URI"])
    if mongo.scheme not in ("mongodb", "mongodb+srv") or not mongo.netloc:
        raise ConfigError("EVENTI_MONGO_URI must be a mongodb:// or mongodb+srv:// URI")
    if not unquote(mongo.path.lstrip("/")):
        raise ConfigError("EVENTI_MONGO_URI must name the database in its path, e.g. mongodb://host:27017/eventi")
    try:
        redis_url.parse(str(settings["REDIS_URL"]))
    except redis_url.RedisUrlError as exc:
        raise ConfigError(str(exc)) from None
    if settings["MAX_CONTENT_LENGTH"] < 1:
        raise ConfigError("EVENTI_MAX_CONTENT_LENGTH must be at least 1")
    if settings["METRICS_BIND"] is not None and not re.fullmatch(r"[^\s:]*:[0-9]{1,5}", settings["METRICS_BIND"]):
        raise ConfigError(f"EVENTI_METRICS_BIND must be host:port, e.g. 0.0.0.0:9100, got {settings['METRICS_BIND']!r}")
    if settings["METRICS_BIND"] and settings["METRICS_BIND"].rsplit(":", 1)[1] == bind.rsplit(":", 1)[-1]:
        raise ConfigError(f"EVENTI_METRICS_BIND must use another port than EVENTI_BIND ({bind})")
    verify = str(settings["PAYHERO_VERIFY_CALLBACKS"]).lower()
    if verify not in ("0", "1", "true", "false", "yes", "no"):
        raise ConfigError(f"PAYHERO_VERIFY_CALLBACKS must be 0 or 1, got {settings['PAYHERO_VERIFY_CALLBACKS']!r}")
    settings["PAYHERO_VERIFY_CALLBACKS"] = verify in ("1", "true", "yes")


def _check_payhero(settings: dict[str, Any]) -> None:
    """PayHero is optional in development and test (no push is sent), required in production."""
    for name in ("PAYHERO_BASE_URL", "PUBLIC_BASE_URL"):
        url = settings[name]
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError(f"{name} must be an http(s) URL")
        if url:
            settings[name] = url.rstrip("/")
    if settings["ENV"] == "production" and not (settings["PAYHERO_BASE_URL"] and settings["PUBLIC_BASE_URL"]):
        raise ConfigError("PAYHERO_BASE_URL and PUBLIC_BASE_URL must be set when EVENTI_ENV=production")
    if settings["PAYHERO_BASE_URL"]:
        if not settings["PAYHERO_AUTH_TOKEN"]:
            raise ConfigError("PAYHERO_AUTH_TOKEN must be set when PAYHERO_BASE_URL is")
        if not str(settings["PAYHERO_CHANNEL_ID"] or "").isdigit():
            raise ConfigError("PAYHERO_CHANNEL_ID must be set to a number when PAYHERO_BASE_URL is")
        settings["PAYHERO_CHANNEL_ID"] = int(settings["PAYHERO_CHANNEL_ID"])
    if settings["PUSH_TIMEOUT"] <= 0:
        raise ConfigError("EVENTI_PUSH_TIMEOUT must be positive")
    if settings["PUSH_LIMIT"] < 0:
        raise ConfigError("EVENTI_PUSH_LIMIT must be 0 (off) or more")
    if settings["PUSH_LIMIT_WINDOW"] < 1:
        raise ConfigError("EVENTI_PUSH_LIMIT_WINDOW must be at least 1")
    if settings["RECONCILE_AFTER_SECONDS"] < 0:
        raise ConfigError("EVENTI_RECONCILE_AFTER_SECONDS must be 0 or more")
    if settings["RECONCILE_INTERVAL_SECONDS"] < 0:
        raise ConfigError("EVENTI_RECONCILE_INTERVAL_SECONDS must be 0 (off) or more")
    if settings["RECONCILE_GIVE_UP_SECONDS"] < settings["RECONCILE_AFTER_SECONDS"]:
        raise ConfigError("EVENTI_RECONCILE_GIVE_UP_SECONDS must be at least EVENTI_RECONCILE_AFTER_SECONDS")
    if settings["RELEASE_INTERRUPTED_AFTER_SECONDS"] < 1:
        raise ConfigError("EVENTI_RELEASE_INTERRUPTED_AFTER_SECONDS must be at least 1: a ticket release younger "
                          "than this is taken to be still running")
    if settings["LATE_PAYMENTS"] not in ("fulfil", "refund"):
        raise ConfigError("EVENTI_LATE_PAYMENTS must be fulfil (hold the tickets again when any are left) or refund")


def _check_page(settings: dict[str, Any]) -> None:
    """The payment page's prompt timings and the support route it names."""
    if not 5 <= settings["PROMPT_SECONDS"] <= 600:
        raise ConfigError("EVENTI_PROMPT_SECONDS must be 5 to 600: how long an M-Pesa prompt can be answered")
    if not 1 <= settings["PROMPT_HELP_SECONDS"] <= settings["PROMPT_SECONDS"]:
        raise ConfigError("EVENTI_PROMPT_HELP_SECONDS must be between 1 and EVENTI_PROMPT_SECONDS")
    contact = " ".join(str(settings["SUPPORT_CONTACT"] or "").split())
    if not contact:
        if settings["ENV"] == "production":
            raise ConfigError("EVENTI_SUPPORT_CONTACT must be set when EVENTI_ENV=production: the payment page "
                              "tells shoppers how to reach you, e.g. \"call 0700 000 000 or write to help@example.com\"")
        contact = DEV_SUPPORT_CONTACT
    if len(contact) > SUPPORT_CONTACT_MAX or "<" in contact or ">" in contact:
        raise ConfigError(f"EVENTI_SUPPORT_CONTACT must be plain text of at most {SUPPORT_CONTACT_MAX} characters")
    settings["SUPPORT_CONTACT"] = contact


PAYBILL = re.compile(r"[0-9]{5,7}")
C2B_TOKEN_MIN = 32


def _check_manual(settings: dict[str, Any]) -> None:
    """Manual payment (docs/operations.md, "Manual payment"): a Paybill number, and the secret of its C2B confirmation URL."""
    paybill = str(settings["MANUAL_PAYBILL"] or "").strip() or None
    if paybill is not None and not PAYBILL.fullmatch(paybill):
        raise ConfigError(f"EVENTI_MANUAL_PAYBILL must be a Paybill number (5 to 7 digits), got {paybill!r}")
    settings["MANUAL_PAYBILL"] = paybill
    token = str(settings["C2B_TOKEN"] or "").strip() or None
    if token is not None and (len(token) < C2B_TOKEN_MIN or not re.fullmatch(r"[A-Za-z0-9_-]+", token)):
        raise ConfigError(f"EVENTI_C2B_TOKEN must be {C2B_TOKEN_MIN}+ characters of A-Z, a-z, 0-9, _ and -")
    if token is not None and paybill is None:
        raise ConfigError("EVENTI_C2B_TOKEN must come with EVENTI_MANUAL_PAYBILL: it is that Paybill's "
                          "confirmation URL secret")
    settings["C2B_TOKEN"] = token


ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?$")


def cors_origins(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """EVENTI_CORS_ORIGINS as a tuple of exact origins (scheme://host[:port], no path, no wildcard)."""
    if isinstance(value, (list, tuple)):
        value = ",".join(value)
    origins = tuple(part.strip() for part in (value or "").split(",") if part.strip())
    for origin in origins:
        if not ORIGIN.match(origin):
            raise ConfigError(f"EVENTI_CORS_ORIGINS must list exact origins such as https://shop.example.com, "
                              f"got {origin!r}")
    return origins


def _dev_secret(var_dir: Path) -> str:
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
