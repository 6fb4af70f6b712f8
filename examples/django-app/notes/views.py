"""The example's pages: a list of notes with a form that adds one (a database write), and a
visit counter kept in a plain file in APP_DATA_DIR (a write outside the database)."""

import fcntl
import os

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from notes.models import MAX_NOTE, Note

SHOWN = 50


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
