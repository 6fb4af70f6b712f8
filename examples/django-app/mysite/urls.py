"""The site's URLs: the notes app at the root, the admin under /admin/ (/health/ is answered by
mysite.health before URL routing)."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("notes.urls")),
]
