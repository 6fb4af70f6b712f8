"""The bundled sample WSGI app: the dev stack's default app and the loopback/bench workload.

Standard library only, so the server needs nothing from the package index to run it.
Every response it makes carries `X-Served-By: hello-app`, which lets tests tell its answers
from nginx's (static files must come from nginx, never from here).
"""

import json
import mimetypes
import os
import time
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
IO_WAIT_SECONDS = 0.020  # the "database call" stand-in of /io


def _respond(start_response, status, body, content_type="text/plain; charset=utf-8"):
    start_response(status, [("Content-Type", content_type),
                            ("Content-Length", str(len(body))),
                            ("X-Served-By", "hello-app")])
    return [body]


def _static(environ, start_response, prefix):
    """Serve static files from Python: only so the benchmark can compare it with nginx.

    nginx answers /static/ itself; /app-static/ reaches this code through the same nginx.
    """
    name = environ["PATH_INFO"][len(prefix):]
    path = (STATIC_DIR / name).resolve()
    if STATIC_DIR not in path.parents or not path.is_file():
        return _respond(start_response, "404 Not Found", b"not found\n")
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return _respond(start_response, "200 OK", path.read_bytes(), ctype)


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/":
        greeting = os.environ.get("APP_GREETING", "Hello from webstack")
        return _respond(start_response, "200 OK", f"{greeting}\n".encode())
    if path == "/healthz":
        return _respond(start_response, "200 OK", b"ok\n")
    if path == "/io":
        time.sleep(IO_WAIT_SECONDS)
        return _respond(start_response, "200 OK", b"waited 20 ms\n")
    if path == "/headers":
        seen = {k: v for k, v in environ.items()
                if k.startswith("HTTP_") or k in ("wsgi.url_scheme", "REMOTE_ADDR")}
        body = json.dumps(seen, sort_keys=True).encode()
        return _respond(start_response, "200 OK", body, "application/json")
    for prefix in ("/static/", "/app-static/"):
        if path.startswith(prefix):
            return _static(environ, start_response, prefix)
    return _respond(start_response, "404 Not Found", b"not found\n")
