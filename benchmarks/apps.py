"""The benchmark project's app: applies the public-API stand-ins an A/B run asks for."""

from __future__ import annotations

from django.apps import AppConfig


class BenchmarksConfig(AppConfig):
    name = "benchmarks"

    def ready(self) -> None:
        from benchmarks import public_api

        public_api.apply_from_environment()
