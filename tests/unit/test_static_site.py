"""appKind static in the program: its settings (the web root, the health path's default and file,
the python-only settings refused by name, before any resource), and what the renderer ships: no
gunicorn, uv, venv or units; nginx's root under `current`, its cache and security headers."""

from __future__ import annotations

from pathlib import Path

import pytest

from components import bootstrap, config
from components.config import PROJECT_DIR
from devtools.mockrun import stack_config
from tests import variants
from tests.cases import arr

EXAMPLE = "examples/static-site"
STATIC = {"appKind": "static", "appSource": EXAMPLE, "appStaticDir": "public"}


def parse(overrides: dict[str, str]) -> config.StackConfig:
    raw = stack_config("dev", {f"webstack:{k}": v for k, v in overrides.items()})
    return config.parse(raw, project="webstack", stack="dev", region="us-east-1",
                        supported_regions=("us-east-1",))


def problems(overrides: dict[str, str]) -> str:
    with pytest.raises(config.ConfigError) as err:
        parse(overrides)
    return str(err.value)


def test_python_stays_the_default_and_static_serves_its_web_root_at_slash() -> None:
    assert parse({}).app.kind == "python" and not parse({}).app.static
    app = parse(STATIC).app
    assert app.static and app.web_dir == "public" and app.health_path == "/"
    assert app.static_url == ""  # nginx serves the whole site, not a prefix
    # without appStaticDir the web root is the app directory itself; an own health path stays
    site = parse({"appKind": "static", "appSource": EXAMPLE, "appPath": "public",
                  "appHealthPath": "/about/"}).app
    assert site.web_dir == "" and site.path == "public" and site.health_path == "/about/"


def test_a_static_site_needs_no_requirements_file() -> None:
    assert not (PROJECT_DIR / EXAMPLE / "public" / "requirements.txt").exists()
    assert parse(STATIC).app.requirements == "requirements.txt"  # for a build's venv, if any


@pytest.mark.parametrize(("key", "value", "why"), [
    ("appWsgi", "site:app", "there is no WSGI app"),
    ("appWorkers", "4", "there is no gunicorn"),
    ("appStaticUrl", "/static/", "nginx serves the whole site"),
    ("appPreStart", arr("echo migrate"), "there is no app process to run them before"),
])
def test_settings_a_static_site_cannot_use_are_refused_by_name(key: str, value: str,
                                                               why: str) -> None:
    text = problems({**STATIC, key: value})
    assert (f"webstack:{key} is set but webstack:appKind is 'static' ({why}") in text
    assert f"expected it removed (pulumi config rm webstack:{key})" in text


def test_an_unknown_kind_names_the_choices() -> None:
    assert "webstack:appKind = 'node': expected one of python, static" in problems(
        {"appKind": "node"})


def test_a_web_root_or_health_file_missing_from_the_source_is_a_config_error() -> None:
    text = problems({**STATIC, "appStaticDir": "dist"})
    assert (f"webstack:appSource '{EXAMPLE}' has no directory dist: expected the site's web "
            "root there (webstack:appStaticDir, relative to appPath), or an appBuild that "
            "makes it") in text
    text = problems({**STATIC, "appHealthPath": "/missing.html"})
    assert (f"webstack:appSource '{EXAMPLE}' has no missing.html in public: expected the file "
            "webstack:appHealthPath = '/missing.html' names (index.html for a directory)") in text
    # the sample app (the default source) is no static site
    assert "has no index.html in its root" in problems({"appKind": "static"})
    # a build makes the web root on the server: the release's candidate check looks there
    built = parse({**STATIC, "appStaticDir": "dist", "appBuild": arr("make site")}).app
    assert built.web_dir == "dist" and built.build == ("make site",)


def test_the_artefact_has_no_app_process_and_nginx_serves_the_release_files() -> None:
    rendered = bootstrap.render(variants.cfg("static"))
    names = {Path(p).name for p in rendered.files}
    for absent in ("gunicorn.conf.py", "uv.toml", "fetch-uv", "requirements-key",
                   "webstack-site.service", "webstack-site.socket", "webstack-site"):
        assert absent not in names
    assert not any("/systemd/" in p for p in rendered.files)
    assert "bootcmd:" not in rendered.user_data  # no early uv fetch
    settings = rendered.files["/usr/local/lib/webstack/site/settings.env"]
    assert 'KIND="static"' in settings and 'WEB_DIR="public"' in settings
    assert 'GUNICORN_VERSION=""' in settings and 'FETCH_UV=""' in settings
    site = rendered.files["/etc/nginx/conf.d/site.conf"]
    assert "proxy_pass" not in site and "upstream" not in site and "gunicorn" not in site
    for line in ("root /srv/site/current/src/public;", "index index.html;",
                 "try_files $uri $uri/ =404;", "add_header Cache-Control $webstack_cache_control;",
                 '"~[.-][0-9a-f]{8,}\\.[A-Za-z0-9]+$" "public, max-age=31536000, immutable";',
                 'default "no-cache";', "gzip on;",
                 'add_header X-Content-Type-Options "nosniff" always;'):
        assert line in site, line


def test_a_static_build_gets_uv_and_its_venv_programs_but_still_no_units() -> None:
    rendered = bootstrap.render(variants.cfg("static-build-alb"))
    names = {Path(p).name for p in rendered.files}
    assert {"uv.toml", "fetch-uv", "requirements-key", "build"} <= names
    assert "gunicorn.conf.py" not in names and not any("/systemd/" in p for p in rendered.files)
    build = rendered.files["/usr/local/lib/webstack/docs/build"]
    assert 'if [ -n "$venv_shared" ] || [ -e "$release/venv" ]; then' in build
    assert "mkdocs build --site-dir site" in build
    assert "bootcmd:" in rendered.user_data  # uv fetched early, as for a python app
