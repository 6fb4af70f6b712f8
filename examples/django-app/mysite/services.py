"""DATABASES and CACHES from the URLs webstack gives the app, parsed with the standard library
(no dj-database-url: one dependency fewer).

DATABASE_URL (webstack's `database` or `databaseUrlSecret`), percent-encoded:
  postgres://user:password@host:5432/name?sslmode=require   psycopg 3; the query's keys are
                                                            libpq's (sslmode, connect_timeout...)
  mysql://user:password@host:3306/name?ssl-mode=REQUIRED    PyMySQL; ssl-mode: DISABLED,
                                                            PREFERRED (its default), REQUIRED
                                                            (encrypted, unverified, as libpq's
                                                            require) or VERIFY_IDENTITY
CACHE_URL (webstack's `cache`):
  rediss://:token@host:6379/0   redis:// without TLS    Django's RedisCache (redis-py)
  memcache://host:11211[,host2:11211]                   PyMemcacheCache, over TLS when
                                                        CACHE_TLS=true (ElastiCache's is)

Error messages name the variable and the expected form, never the URL: it holds a password.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

DATABASE_FORM = "postgres://user:password@host:5432/name or mysql://user:password@host:3306/name"
CACHE_FORM = "rediss://:token@host:6379/0, redis://host:6379/0 or memcache://host:11211"
ENGINES = {"postgres": "postgresql", "postgresql": "postgresql", "mysql": "mysql"}
# Kept open and checked before reuse: a connection that died (a failover, a restart) is
# replaced instead of failing a request. A rotated password restarts the app (webstack's
# secrets refresh), which opens new connections with the new one.
CONN_MAX_AGE = 60


def _split(name: str, url: str, form: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        raise ImproperlyConfigured(f"{name} is not a URL: expected {form}") from None
    if not parts.hostname:
        raise ImproperlyConfigured(f"{name} has no host: expected {form}")
    return parts


def _mysql_tls(mode: str) -> dict[str, Any]:
    """PyMySQL's connect() arguments for MySQL's --ssl-mode."""
    if mode == "DISABLED":
        return {"ssl_disabled": True}
    if mode == "PREFERRED":
        return {}
    if mode == "REQUIRED":
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        return {"ssl": context}
    if mode == "VERIFY_IDENTITY":
        return {"ssl": ssl.create_default_context()}
    raise ImproperlyConfigured(f"DATABASE_URL ssl-mode={mode}: expected DISABLED, PREFERRED, "
                               "REQUIRED or VERIFY_IDENTITY")


def database(url: str) -> dict[str, Any]:
    """Django's DATABASES["default"] for DATABASE_URL."""
    parts = _split("DATABASE_URL", url, DATABASE_FORM)
    engine = ENGINES.get(parts.scheme)
    if engine is None:
        raise ImproperlyConfigured(
            f"DATABASE_URL's scheme {parts.scheme or '(none)'}: expected {DATABASE_FORM}")
    name = unquote(parts.path.removeprefix("/"))
    if not name or "/" in name:
        raise ImproperlyConfigured(f"DATABASE_URL names no database: expected {DATABASE_FORM}")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if engine == "postgresql":
        options: dict[str, Any] = query
    else:
        options = _mysql_tls(query.pop("ssl-mode", "PREFERRED"))
        if query:
            raise ImproperlyConfigured(f"DATABASE_URL's mysql option(s) {', '.join(query)}: "
                                       "expected only ssl-mode")
    return {"ENGINE": f"django.db.backends.{engine}", "NAME": name,
            "USER": unquote(parts.username or ""), "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname, "PORT": str(parts.port or ""), "OPTIONS": options,
            "CONN_MAX_AGE": CONN_MAX_AGE, "CONN_HEALTH_CHECKS": True}


def cache(url: str, tls: str = "") -> dict[str, Any]:
    """Django's CACHES["default"] for CACHE_URL (and CACHE_TLS, `tls`: true or false)."""
    if tls not in ("", "true", "false"):
        raise ImproperlyConfigured(f"CACHE_TLS={tls!r}: expected true or false")
    scheme, sep, rest = url.partition("://")
    scheme = scheme if sep else ""
    if scheme in ("redis", "rediss"):
        _split("CACHE_URL", url, CACHE_FORM)
        # redis-py reads the URL itself: the password, the database number, TLS for rediss
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    if scheme == "memcache":
        nodes = [_split("CACHE_URL", f"memcache://{node}", CACHE_FORM)
                 for node in rest.partition("/")[0].split(",")]
        # verified against the system's CAs, as redis-py verifies rediss://
        options = {"tls_context": ssl.create_default_context()} if tls == "true" else {}
        return {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
                "LOCATION": [f"{node.hostname}:{node.port or 11211}" for node in nodes],
                "OPTIONS": options}
    raise ImproperlyConfigured(f"CACHE_URL's scheme {scheme or '(none)'}: expected {CACHE_FORM}")
