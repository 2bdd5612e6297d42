from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from tests.testapp import jobs, views  # noqa: F401 (the opted-in tasks: orderable once imported)

router = SimpleRouter()
router.register("items", views.ItemViewSet)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("async/", include("async_orders.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("schema/swagger/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger"),
    path("echo/<int:number>/", views.echo, name="echo-int"),
    path("echo/<slug:slug>/slug/", views.echo, name="echo-slug"),
    path("echo/<uuid:token>/uuid/", views.echo, name="echo-uuid"),
    path("echo/", views.echo, name="echo"),
    path("plain/", views.not_opted_in, name="not-opted-in"),
    path("listed/", views.listed_in_settings, name="listed-in-settings"),
    path("cbv/", views.EchoView.as_view(), name="cbv"),
    path("staff-only/", views.StaffOnly.as_view(), name="staff-only"),
    path("post-only/", views.post_only, name="post-only"),
    path("fails/status/", views.answers_404, name="answers-404"),
    path("answers-text/", views.answers_text, name="answers-text"),
    path("fails/raise/", views.raises, name="raises"),
    path("fails/on-error/", views.fails_on_error, name="fails-on-error"),
    path("fails/midway/", views.fails_midway, name="fails-midway"),
    path("logs-a-line/", views.logs_a_line, name="logs-a-line"),
    path("fails/naming-its-order/", views.raises_naming_its_order, name="raises-naming-its-order"),
    path("gated/<int:steps>/", views.gated, name="gated"),
    path("canceled-midway/", views.canceled_midway, name="canceled-midway"),
    path("typed/", views.typed_inputs, name="typed-inputs"),
    path("flaky/", views.flaky, name="flaky"),
    path("counted/", views.counted, name="counted"),
    path("routed/", views.routed, name="routed"),
    path("gated-retrying/<int:steps>/", views.gated_retrying, name="gated-retrying"),
    path("ledgered/<int:steps>/", views.ledgered, name="ledgered"),
    path("ledgered-retrying/<int:steps>/", views.ledgered_retrying, name="ledgered-retrying"),
    path("ledgered-timed/<int:steps>/", views.ledgered_timed, name="ledgered-timed"),
    path("ledgered-stuck/<int:steps>/", views.ledgered_stuck, name="ledgered-stuck"),
    path("gated-once/<int:steps>/", views.gated_once, name="gated-once"),
    path("pizzas/<int:pk>/bake/", views.bake_pizza, name="bake-pizza"),
    path("big/", views.big_response, name="big-response"),
    path("redirects/", views.redirects, name="redirects"),
    path("members/", views.members_only, name="members-only"),
    path("csrf/", views.csrf_token, name="csrf-token"),
    path("labels-itself/", views.labels_itself, name="labels-itself"),
    path("shop/", include((router.urls, "shop"), namespace="shop")),
]
