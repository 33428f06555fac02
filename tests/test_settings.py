"""Every setting is checked at start: an invalid value is a ConfigError naming it, and the settings do what they say."""
import pytest

from eventi import config
from eventi.runtime import current_runtime
from tests.support.api import order_body

INVALID = {  # environment variable -> a value it must refuse (with whatever else is needed to reach the check)
    "EVENTI_ENV": ("staging", {}),
    "EVENTI_SECRET_KEY": ("short", {"EVENTI_ENV": "production", "PAYHERO_BASE_URL": "https://p.example",
                                    "PAYHERO_AUTH_TOKEN": "t", "PAYHERO_CHANNEL_ID": "1", "PUBLIC_BASE_URL": "https://e.example"}),
    "EVENTI_MONGO_URI": ("mongodb://127.0.0.1:27017", {}),
    "EVENTI_REDIS_URL": ("http://127.0.0.1:6379", {}),
    "EVENTI_NOTIFIER": ("bogus", {}),
    "EVENTI_VAR_DIR": ("/proc/eventi", {}),
    "EVENTI_WAIT_DEFAULT_SECONDS": ("0", {}),
    "EVENTI_WAIT_MAX_SECONDS": ("500", {}),
    "EVENTI_STATUS_CACHE_TTL": ("60", {}),
    "EVENTI_RECHECK_SECONDS": ("0", {}),
    "EVENTI_STORE_MAX_READS": ("0", {}),
    "EVENTI_MAX_WAITS_PER_ORDER": ("0", {}),
    "EVENTI_MAX_WAITS_PER_WORKER": ("many", {}),
    "EVENTI_HEADER_TIMEOUT_SECONDS": ("-1", {}),
    "EVENTI_LOG_FORMAT": ("xml", {}),
    "EVENTI_LOG_LEVEL": ("verbose", {}),
    "EVENTI_METRICS_BIND": ("9100", {}),
    "EVENTI_MAX_CONTENT_LENGTH": ("0", {}),
    "EVENTI_PROXY_COUNT": ("9", {}),
    "PAYHERO_BASE_URL": ("backend.payhero.co.ke", {}),
    "PAYHERO_AUTH_TOKEN": ("", {"PAYHERO_BASE_URL": "https://p.example", "PAYHERO_CHANNEL_ID": "1"}),
    "PAYHERO_CHANNEL_ID": ("channel-1", {"PAYHERO_BASE_URL": "https://p.example", "PAYHERO_AUTH_TOKEN": "t"}),
    "PUBLIC_BASE_URL": ("eventi.example", {}),
    "EVENTI_PUSH_TIMEOUT": ("0", {}),
    "EVENTI_PUSH_LIMIT": ("-1", {}),
    "EVENTI_PUSH_LIMIT_WINDOW": ("0", {}),
    "EVENTI_RECONCILE_AFTER_SECONDS": ("-1", {}),
    "EVENTI_RECONCILE_GIVE_UP_SECONDS": ("60", {}),
    "EVENTI_RECONCILE_INTERVAL_SECONDS": ("-5", {}),
    "EVENTI_RELEASE_INTERRUPTED_AFTER_SECONDS": ("0", {}),
    "EVENTI_LATE_PAYMENTS": ("later", {}),
    "PAYHERO_VERIFY_CALLBACKS": ("maybe", {}),
    "EVENTI_CORS_ORIGINS": ("*", {}),
    "EVENTI_PROMPT_SECONDS": ("4", {}),
    "EVENTI_PROMPT_HELP_SECONDS": ("90", {}),
    "EVENTI_SUPPORT_CONTACT": ("x" * 201, {}),
    "EVENTI_MANUAL_PAYBILL": ("60-01", {}),
    "EVENTI_C2B_TOKEN": ("short", {"EVENTI_MANUAL_PAYBILL": "600100"}),
}


def test_every_setting_has_an_invalid_value_here():
    assert {config.env_name(name) for name in config.DEFAULTS} == set(INVALID)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_an_invalid_value_is_refused_naming_the_setting(tmp_path, name):
    value, context = INVALID[name]
    environ = {"EVENTI_VAR_DIR": str(tmp_path), **context, name: value}
    with pytest.raises(config.ConfigError) as raised:
        config.load(environ=environ)
    assert name in str(raised.value).split(" must ")[0], str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("raw, level", [("debug", "DEBUG"), ("Warning", "WARNING"), ("INFO", "INFO")])
def test_log_levels_are_taken_in_any_case(tmp_path, raw, level):
    assert config.load(environ={"EVENTI_VAR_DIR": str(tmp_path), "EVENTI_LOG_LEVEL": raw}).log_level == level


@pytest.mark.parametrize("uri", ["mongodb://127.0.0.1:27017/eventi", "mongodb://a:1,b:2/orders?replicaSet=rs0",
                                 "mongodb+srv://user:pw@cluster0.example.net/eventi?retryWrites=true"])
def test_mongo_uris_with_a_database_are_accepted(tmp_path, uri):
    assert config.load(environ={"EVENTI_VAR_DIR": str(tmp_path), "EVENTI_MONGO_URI": uri}).mongo_uri == uri


@pytest.fixture
def short_waits_client(settings):
    from eventi import create_app

    app = create_app({**settings, "WAIT_MAX_SECONDS": 5, "WAIT_DEFAULT_SECONDS": 5})
    yield app.test_client()
    current_runtime(app).close()


def test_a_wait_longer_than_wait_max_seconds_is_refused(short_waits_client):
    created = short_waits_client.post("/api/orders", json=order_body())
    wait_url = created.json["waitUrl"]
    refused = short_waits_client.get(wait_url + "&timeout=9")
    assert refused.status_code == 400
    assert refused.json["error"] == "validation_error" and "timeout" in refused.json["details"]
    document = short_waits_client.get("/api/openapi.json").json
    timeout = [p for p in document["paths"]["/api/orders/{order_id}/wait"]["get"]["parameters"] if p["name"] == "timeout"]
    assert timeout[0]["schema"]["maximum"] == 5


def test_production_needs_a_support_contact_and_development_has_one(tmp_path):
    production = {"EVENTI_VAR_DIR": str(tmp_path), "EVENTI_ENV": "production", "EVENTI_SECRET_KEY": "s" * 40,
                  "PAYHERO_BASE_URL": "https://p.example", "PAYHERO_AUTH_TOKEN": "t", "PAYHERO_CHANNEL_ID": "1",
                  "PUBLIC_BASE_URL": "https://e.example"}
    with pytest.raises(config.ConfigError, match="EVENTI_SUPPORT_CONTACT must be set"):
        config.load(environ=production)
    contact = config.load(environ={**production, "EVENTI_SUPPORT_CONTACT": " call 0700 000 000\n or write "})
    assert contact.support_contact == "call 0700 000 000 or write"
    assert config.load(environ={"EVENTI_VAR_DIR": str(tmp_path)}).support_contact == config.DEV_SUPPORT_CONTACT
