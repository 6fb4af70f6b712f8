"""Settings, all from the environment webstack gives the app (webstack:appEnv in app.env, secrets
from SSM, APP_DATA_DIR), so the same code runs on a laptop (DJANGO_DEBUG=1) and on the servers.

Production (DJANGO_DEBUG unset or 0) refuses to start without SECRET_KEY, DJANGO_ALLOWED_HOSTS and
an existing APP_DATA_DIR: a missing one is a clear ImproperlyConfigured at import, which the
release's build step or candidate check reports, instead of an app that serves 400s or loses
its database.

Environment:
  SECRET_KEY                   required unless DJANGO_DEBUG=1 (webstack:appSecretValues)
  DJANGO_DEBUG                 1: development (DEBUG, a fixed key, ./data); default 0
  DJANGO_ALLOWED_HOSTS         comma list of host names the site answers to (required)
  DJANGO_CSRF_TRUSTED_ORIGINS  comma list of origins such as https://app.example.com (optional)
  DJANGO_HTTPS                 1: the site is reached over HTTPS only (secure cookies, redirect)
  APP_DATA_DIR                 the writable directory kept across releases (set by webstack)
  DATABASE_URL                 the database (webstack's `database`); unset: SQLite in APP_DATA_DIR
  CACHE_URL                    the cache (webstack's `cache`); unset: each process's own memory
  CACHE_TLS                    true: memcached over TLS (webstack sets it; rediss:// says it itself)
(mysite/services.py says the URLs' forms.)
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from mysite import services

BASE_DIR = Path(__file__).resolve().parent.parent


def _flag(name: str) -> bool:
    value = os.environ.get(name, "0").strip() or "0"
    if value not in ("0", "1"):
        raise ImproperlyConfigured(f"{name}={value!r}: expected 1 (on) or 0 (off)")
    return value == "1"


def _list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _required(name: str, what: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ImproperlyConfigured(
            f"{name} is not set: expected {what}. Only DJANGO_DEBUG=1 runs without it.")
    return value


DEBUG = _flag("DJANGO_DEBUG")
HTTPS_ONLY = _flag("DJANGO_HTTPS")

if DEBUG:
    SECRET_KEY = os.environ.get("SECRET_KEY") or "django-insecure-development-only"
    DATA_DIR = Path(os.environ.get("APP_DATA_DIR") or BASE_DIR / "data")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
else:
    SECRET_KEY = _required(
        "SECRET_KEY", "a long random string (with webstack: pulumi config set --secret --path "
        "'webstack:appSecretValues[0]' SECRET_KEY=...)")
    DATA_DIR = Path(_required("APP_DATA_DIR", "the app's writable data directory"))
    if not DATA_DIR.is_dir():
        raise ImproperlyConfigured(f"APP_DATA_DIR={DATA_DIR}: expected an existing directory")

ALLOWED_HOSTS = _list("DJANGO_ALLOWED_HOSTS")
if not DEBUG and not ALLOWED_HOSTS:
    _required("DJANGO_ALLOWED_HOSTS", "the site's host names, comma-separated")
CSRF_TRUSTED_ORIGINS = _list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "notes",
]

MIDDLEWARE = [
    "mysite.health.HealthCheckMiddleware",  # first: see its docstring
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite in the data directory unless webstack gives a database: it survives new releases,
# which replace the code's directory, but it is one server's (serverCount 1 only).
DATABASES = {
    "default": services.database(os.environ["DATABASE_URL"]) if os.environ.get("DATABASE_URL")
    else {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "db.sqlite3",
        # Several gunicorn workers write: wait for the lock rather than fail at once.
        # WAL lets readers go on while one writes.
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE",
                    "init_command": "PRAGMA journal_mode=WAL;"},
    }
}
if DATABASES["default"]["ENGINE"].endswith(".mysql"):
    import pymysql  # no compiler needed on the servers, unlike mysqlclient

    pymysql.install_as_MySQLdb()
CACHES = {
    "default": services.cache(os.environ["CACHE_URL"], os.environ.get("CACHE_TLS", ""))
    if os.environ.get("CACHE_URL")
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in ("UserAttributeSimilarityValidator", "MinimumLengthValidator",
                 "CommonPasswordValidator", "NumericPasswordValidator")
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# collectstatic (webstack:appBuild) writes into the release itself; nginx serves /static/ from
# there (webstack:appStaticUrl /static/, webstack:appStaticDir staticfiles), never Django.
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# nginx always sets X-Forwarded-Proto (overwriting the client's), from the load balancer's
# answer or its own scheme, so the header can be trusted. The Host header is nginx's $host;
# X-Forwarded-Host is not needed and stays ignored.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = False

# Only for a site reached over HTTPS alone (tlsMode acm or letsencrypt): on plain HTTP they
# would redirect to a port nothing listens on and drop the session and CSRF cookies.
SECURE_SSL_REDIRECT = HTTPS_ONLY
SESSION_COOKIE_SECURE = HTTPS_ONLY
CSRF_COOKIE_SECURE = HTTPS_ONLY
# Strict-Transport-Security is sent by webstack's nginx on HTTPS (letsencrypt, or the load
# balancer's https), so Django leaves SECURE_HSTS_SECONDS at 0 rather than send it twice.
SILENCED_SYSTEM_CHECKS = ["security.W004"]

# Everything to stderr: gunicorn captures it into the app's error log, which CloudWatch ships.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "{asctime} {levelname} {name}: {message}", "style": "{"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": "INFO"},
    "loggers": {"django": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
}
