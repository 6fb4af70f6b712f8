"""The health check, answered before anything else looks at the request.

webstack checks `webstack:appHealthPath` (/health/) with a Host header Django does not know:
the load balancer sends the server's private IP, the release script's candidate check
`localhost`. Behind CommonMiddleware those requests would get 400 from ALLOWED_HOSTS, and behind
SecurityMiddleware a plain-HTTP check would get SECURE_SSL_REDIRECT's 301, so this middleware
is listed FIRST and answers without calling the rest of the stack. It never reads request.get_host()
(which is what validates the Host header) and says only "ok", so it reveals nothing to a client
that reaches it by IP.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

HEALTH_PATH = "/health/"


class HealthCheckMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == HEALTH_PATH:
            return HttpResponse(b"ok", content_type="text/plain")
        return self.get_response(request)
