"""The Django example's DATABASE_URL and CACHE_URL parsing (examples/django-app/mysite/services.py)
in this process: the forms webstack's servers write, and refusals that name the variable and
the expected form without echoing the URL (it holds the password)."""

from __future__ import annotations

import importlib.util
import ssl
from types import ModuleType

import pytest
from django.core.exceptions import ImproperlyConfigured

from components.config import PROJECT_DIR

PASSWORD = "p@ss:w/rd%?#"  # every character a URL must percent-encode
ENCODED = "p%40ss%3Aw%2Frd%25%3F%23"


def _services() -> ModuleType:
    path = PROJECT_DIR / "examples" / "django-app" / "mysite" / "services.py"
    spec = importlib.util.spec_from_file_location("django_example_services", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


services = _services()


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_a_postgres_url(scheme: str) -> None:
    db = services.database(f"{scheme}://web%2Bstack:{ENCODED}@db.internal:5433/app_1"
                           "?sslmode=require&connect_timeout=5")
    assert db == {"ENGINE": "django.db.backends.postgresql", "NAME": "app_1",
                  "USER": "web+stack", "PASSWORD": PASSWORD, "HOST": "db.internal",
                  "PORT": "5433", "OPTIONS": {"sslmode": "require", "connect_timeout": "5"},
                  "CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": True}


def test_a_mysql_url_and_its_tls_modes() -> None:
    db = services.database(f"mysql://webstack:{ENCODED}@10.0.2.2/app")
    assert (db["ENGINE"], db["PASSWORD"], db["HOST"], db["PORT"], db["OPTIONS"]) == (
        "django.db.backends.mysql", PASSWORD, "10.0.2.2", "", {})
    required = services.database("mysql://u:p@h:3306/app?ssl-mode=REQUIRED")["OPTIONS"]["ssl"]
    assert isinstance(required, ssl.SSLContext)
    assert (required.verify_mode, required.check_hostname) == (ssl.CERT_NONE, False)
    verified = services.database("mysql://u:p@h/app?ssl-mode=VERIFY_IDENTITY")["OPTIONS"]["ssl"]
    assert (verified.verify_mode, verified.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert services.database("mysql://u:p@h/app?ssl-mode=DISABLED")["OPTIONS"] == {
        "ssl_disabled": True}


@pytest.mark.parametrize(("url", "says"), [
    (f"sqlite://u:{ENCODED}@h/app", "DATABASE_URL's scheme sqlite: expected postgres://"),
    (f"postgres://u:{ENCODED}@/app", "DATABASE_URL has no host: expected postgres://"),
    (f"postgres://u:{ENCODED}@h:54x2/app", "DATABASE_URL is not a URL: expected postgres://"),
    (f"postgres://u:{ENCODED}@h:5432", "DATABASE_URL names no database: expected postgres://"),
    (f"mysql://u:{ENCODED}@h/app?ssl-mode=ON", "DATABASE_URL ssl-mode=ON: expected DISABLED"),
    (f"mysql://u:{ENCODED}@h/app?sslmode=require",
     "DATABASE_URL's mysql option(s) sslmode: expected only ssl-mode"),
])
def test_a_bad_database_url_is_named_without_its_password(url: str, says: str) -> None:
    with pytest.raises(ImproperlyConfigured) as refused:
        services.database(url)
    assert str(refused.value).startswith(says)
    assert ENCODED not in str(refused.value) and PASSWORD not in str(refused.value)


def test_cache_urls() -> None:
    url = f"rediss://:{ENCODED}@cache.internal:6379/0"
    assert services.cache(url) == {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": url}
    assert services.cache("memcache://a.internal:11211,b.internal", "false") == {
        "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
        "LOCATION": ["a.internal:11211", "b.internal:11211"], "OPTIONS": {}}
    context = services.cache("memcache://a.internal:11211", "true")["OPTIONS"]["tls_context"]
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    with pytest.raises(ImproperlyConfigured, match="CACHE_TLS='yes': expected true or false"):
        services.cache("memcache://a.internal:11211", "yes")


@pytest.mark.parametrize(("url", "says"), [
    (f"valkey://:{ENCODED}@h:6379", "CACHE_URL's scheme valkey: expected rediss://"),
    (f":{ENCODED}@h:6379", "CACHE_URL's scheme (none): expected rediss://"),
    (f"rediss://:{ENCODED}@:6379", "CACHE_URL has no host: expected rediss://"),
    ("memcache://a:11211,b:eleven", "CACHE_URL is not a URL: expected rediss://"),
])
def test_a_bad_cache_url_is_named_without_its_password(url: str, says: str) -> None:
    with pytest.raises(ImproperlyConfigured) as refused:
        services.cache(url)
    assert str(refused.value).startswith(says)
    assert ENCODED not in str(refused.value)
