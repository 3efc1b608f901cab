from django.urls import include, path

from .baseline import views

urlpatterns = [
    path("paydesk/", include("paydesk.urls")),
    path("baseline/", views.baseline, name="baseline"),
    path("ping/", views.ping, name="ping"),
]
