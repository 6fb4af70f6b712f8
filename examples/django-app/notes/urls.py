from django.urls import path

from notes import views

urlpatterns = [
    path("", views.index, name="index"),
    path("notes/", views.add_note, name="add-note"),
    path("visits/", views.visits, name="visits"),
    path("services/", views.services, name="services"),
]
