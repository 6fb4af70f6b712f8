"""The container example's WSGI app: standard library only, so its image needs nothing but
Python and gunicorn.

It says which version it is (the VERSION file the image carries, also in X-Release) so a
release can be seen switching, and answers /healthz, the health check webstack runs before
traffic moves.
"""

from pathlib import Path

VERSION_FILE = Path(__file__).resolve().parent / "VERSION"
VERSION = VERSION_FILE.read_text().strip() if VERSION_FILE.exists() else "dev"


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/healthz":
        status, body = "200 OK", b"ok\n"
    elif path == "/":
        status, body = "200 OK", f"Hello from a container, version {VERSION}\n".encode()
    else:
        status, body = "404 Not Found", b"not found\n"
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body))),
                            ("X-Release", VERSION)])
    return [body]
