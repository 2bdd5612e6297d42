"""``django.tasks``, wherever this Django has it: the one place that knows.

Django >= 6.0 ships ``django.tasks``; on Django 5.2 the ``django-tasks`` backport
(``django_tasks``) offers the same API. Everything of ours that speaks to the Tasks
framework imports its names from here, so the choice is made once. Without either,
importing this module raises an ``ImproperlyConfigured`` that names the fix: it is
imported only by code that serves ``TASKS``, never by the rest of the package.

Type checkers see the backport (typed, and installed with the dev requirements);
``django.tasks`` has the same names and shapes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

__all__ = [
    "DEFAULT_TASK_PRIORITY",
    "DEFAULT_TASK_QUEUE_NAME",
    "TASK_MAX_PRIORITY",
    "TASK_MIN_PRIORITY",
    "BaseTaskBackend",
    "InvalidTask",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "default_task_backend",
    "normalize_json",
    "task",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]

#: What to do when neither is importable.
MISSING = (
    "async_orders.task_backend.OrderBackend needs the Tasks framework: Django >= 6.0 "
    "(django.tasks), or on Django 5.2 the backport: pip install django-tasks"
)

#: Where each name lives in each implementation, ``django.tasks`` first: on Django
#: >= 6.0 the built-in one wins even when the backport is installed too.
PLACES: dict[str, dict[str, str]] = {
    "django.tasks": {
        "InvalidTask": "django.tasks.exceptions.InvalidTask",
        "normalize_json": "django.utils.json.normalize_json",
    },
    "django_tasks": {
        "InvalidTask": "django_tasks.exceptions.InvalidTaskError",
        "normalize_json": "django_tasks.utils.normalize_json",
    },
}
#: The names both keep in the same modules, by module.
SHARED = {
    "": (
        "TaskContext",
        "TaskResult",
        "TaskResultStatus",
        "default_task_backend",
        "task",
        "task_backends",
    ),
    ".backends.base": ("BaseTaskBackend",),
    ".base": (
        "DEFAULT_TASK_PRIORITY",
        "DEFAULT_TASK_QUEUE_NAME",
        "TASK_MAX_PRIORITY",
        "TASK_MIN_PRIORITY",
        "Task",
        "TaskError",
    ),
    ".exceptions": ("TaskResultDoesNotExist",),
    ".signals": ("task_enqueued", "task_finished", "task_started"),
}


def _names() -> dict[str, Any]:
    """Each exported name, from the first implementation that imports."""
    for package, own in PLACES.items():
        try:
            importlib.import_module(package)
        except ImportError:
            continue
        names = {
            name: getattr(importlib.import_module(package + module), name)
            for module, shared in SHARED.items()
            for name in shared
        }
        for name, path in own.items():
            names[name] = import_string(path)
        return names
    raise ImproperlyConfigured(MISSING)


if TYPE_CHECKING:
    from django_tasks import (
        TaskContext,
        TaskResult,
        TaskResultStatus,
        default_task_backend,
        task,
        task_backends,
    )
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import (
        DEFAULT_TASK_PRIORITY,
        DEFAULT_TASK_QUEUE_NAME,
        TASK_MAX_PRIORITY,
        TASK_MIN_PRIORITY,
        Task,
        TaskError,
    )
    from django_tasks.exceptions import InvalidTaskError as InvalidTask
    from django_tasks.exceptions import TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued, task_finished, task_started
    from django_tasks.utils import normalize_json
else:
    globals().update(_names())
