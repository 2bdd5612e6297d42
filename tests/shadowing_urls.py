"""A URLconf where reverse() and resolve() of an opted-in name can reach another view:
a URL name given twice, and a path shadowed by an earlier catch-all route."""

from __future__ import annotations

from django.urls import include, path

from tests.testapp import views

urlpatterns = [
    path("async/", include("async_orders.urls")),
    # reverse("twin") picks the last route named so: a view never opted in.
    path("twin/", views.echo, name="twin"),
    path("twin/plain/", views.catch_all, name="twin"),
    # resolve("/pages/special/") stops at the catch-all listed first.
    path("pages/<slug:slug>/", views.catch_all, name="page"),
    path("pages/special/", views.echo, name="special"),
    path("echo/", views.echo, name="echo"),
]
