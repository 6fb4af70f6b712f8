"""The example's pages: a list of notes with a form that adds one (a database write), a
visit counter kept in a plain file in APP_DATA_DIR (a write outside the database), and
/services/, which uses the database and the cache the stack gives the app."""

import fcntl
import os
import re

from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from notes.models import MAX_NOTE, MAX_TAG, Note, Visit

SHOWN = 50
COUNTER = "services-visits"  # the cache key /services/ increments
TAG = re.compile(rf"[A-Za-z0-9_-]{{0,{MAX_TAG}}}")


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    notes = Note.objects.all()[:SHOWN]
    return render(request, "notes/index.html", {"notes": notes, "max_note": MAX_NOTE})


@require_POST
def add_note(request: HttpRequest) -> HttpResponse:
    text = str(request.POST.get("text", "")).strip()
    if not text or len(text) > MAX_NOTE:
        return HttpResponse(f"a note is 1-{MAX_NOTE} characters\n".encode(), status=400,
                            content_type="text/plain")
    Note.objects.create(text=text)
    return redirect("index")


@require_GET
def visits(request: HttpRequest) -> HttpResponse:
    """Count this visit in APP_DATA_DIR/visits.txt. The lock makes concurrent workers and
    threads count every visit once."""
    path = settings.DATA_DIR / "visits.txt"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    with os.fdopen(fd, "r+", encoding="ascii") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        count = int(f.read().strip() or 0) + 1
        f.seek(0)
        f.truncate()
        f.write(f"{count}\n")
    return HttpResponse(f"visits: {count}\n".encode(), content_type="text/plain")


@require_GET
def services(request: HttpRequest) -> HttpResponse:
    """Write a Visit row (tagged with ?tag=), read it back by its id, and count the visit in
    the cache: each line says which backend answered, so a deployment shows it reached the
    stack's database and cache (SQLite and the process's memory without them)."""
    tag = str(request.GET.get("tag", ""))
    if not TAG.fullmatch(tag):
        return HttpResponse(f"a tag is 0-{MAX_TAG} letters, digits, _ or -\n".encode(),
                            status=400, content_type="text/plain")
    written = Visit.objects.create(tag=tag)
    read = Visit.objects.get(pk=written.pk)
    cache = caches["default"]
    cache.add(COUNTER, 0, timeout=None)  # atomic: only the first visit creates it
    counter = cache.incr(COUNTER)
    lines = [f"database: {connection.vendor}", f"visit: {read.pk} tag={read.tag}",
             f"visits: {Visit.objects.count()}",
             f"cache: {type(cache).__name__}", f"counter: {counter}"]
    return HttpResponse("".join(f"{line}\n" for line in lines).encode(),
                        content_type="text/plain")
