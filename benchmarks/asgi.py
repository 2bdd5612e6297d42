"""ASGI entry point uvicorn serves in the waiting benchmark (``benchmarks.waiters``)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
os.environ.setdefault("ASYNC_ORDERS_BENCH_ASGI", "1")

application = get_asgi_application()
