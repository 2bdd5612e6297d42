"""``OrderBackend``: ``django.tasks`` tasks run as orders, by our worker.

They run with Django >= 6.0's ``django.tasks`` or, on Django 5.2, the
``django-tasks`` backport (:mod:`async_orders.task_compat` picks).
"""

from __future__ import annotations

import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from async_orders import task_compat


def test_without_the_tasks_framework_the_error_names_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "django.tasks", None)  # import raises ImportError
    monkeypatch.setitem(sys.modules, "django_tasks", None)

    with pytest.raises(ImproperlyConfigured, match="pip install django-tasks"):
        task_compat._names()
