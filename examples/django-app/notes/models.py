"""The notes, whose rows must survive new releases (in the stack's database, else SQLite in
APP_DATA_DIR), and the visits /services/ writes and reads back; their tables are made by the
migrations webstack:appMigrate runs once per release."""

from django.db import models

MAX_NOTE = 200  # characters
MAX_TAG = 64


class Note(models.Model):
    text = models.CharField(max_length=MAX_NOTE)
    created = models.DateTimeField(auto_now_add=True)
    objects = models.Manager()  # Django adds it anyway; declared, type checkers see it too

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return str(self.text)


class Visit(models.Model):
    """One GET of /services/: a row written, then read back in a query of its own."""

    tag = models.CharField(max_length=MAX_TAG, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    objects = models.Manager()
