"""A small Flask 3 app for webstack (webstack:appWsgi app:app).

/healthz answers the health checks; /static/ is served by nginx from static/ (Flask's own
static route only answers where nginx is absent, e.g. `flask run`); / lists the messages kept in
APP_DATA_DIR, the writable directory webstack keeps across releases, and a POST adds one.
Without APP_DATA_DIR (a laptop), ./data is used.
"""

import fcntl
import json
import os
from pathlib import Path

from flask import Flask, abort, redirect, render_template, request, url_for

MAX_MESSAGE = 200
SHOWN = 50

app = Flask(__name__)
DATA_DIR = Path(os.environ.get("APP_DATA_DIR") or Path(app.root_path) / "data")
MESSAGES = DATA_DIR / "messages.jsonl"


@app.get("/healthz")
def health() -> tuple[str, int, dict[str, str]]:
    return "ok\n", 200, {"Content-Type": "text/plain"}


@app.get("/")
def index() -> str:
    lines = MESSAGES.read_text(encoding="utf-8").splitlines() if MESSAGES.exists() else []
    messages = [json.loads(line) for line in reversed(lines[-SHOWN:])]
    return render_template("index.html", messages=messages, data_dir=DATA_DIR)


@app.post("/messages")
def add_message():
    text = request.form.get("text", "").strip()
    if not text or len(text) > MAX_MESSAGE:
        abort(400, f"a message is 1-{MAX_MESSAGE} characters")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    with MESSAGES.open("a", encoding="utf-8") as f:
        # One whole line per message, even with several workers appending at once.
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps({"text": text}) + "\n")
    return redirect(url_for("index"), code=303)
