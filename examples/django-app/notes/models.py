"""One table, so the example shows a migration (webstack:appPreStart runs `migrate`) and writes
that must survive new releases (the database lives in APP_DATA_DIR)."""

from django.db import models

MAX_NOTE = 200  # characters


class Note(models.Model):
    text = models.CharField(max_length=MAX_NOTE)
    created = models.DateTimeField(auto_now_add=True)
    objects = models.Manager()  # Django adds it anyway; declared, type checkers see it too

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return str(self.text)
