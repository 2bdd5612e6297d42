"""What makes a view (or a ``django.tasks`` task) schedulable, and finding it by name.

There is no registry of views: a view is orderable when its URL name resolves to a
callback marked by :func:`schedulable` (or listed in ``SCHEDULABLE_VIEWS``). The
URL configuration is walked once per resolver to index every named route.

A task has no URL to find it by, so :func:`schedulable` records an opted-in task
under its dotted path, and :func:`find_task` looks only there: a path a client sends
is never imported, so a request cannot make the server import a module (nor order a
task nobody opted in). The module that defines the task must therefore be imported
in the web process, as the modules holding signal receivers must be.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from django.urls import (
    Resolver404,
    ResolverMatch,
    URLPattern,
    URLResolver,
    get_resolver,
    resolve,
    reverse,
)
from rest_framework.serializers import Serializer

from async_orders.conf import conf

OPTIONS_ATTRIBUTE = "async_orders_options"
#: Methods a plain function view opted in without a ``method`` is assumed to accept:
#: it cannot be introspected. One opted in with a ``method`` is ordered with that one.
FUNCTION_VIEW_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

V = TypeVar("V", bound=Callable[..., Any])


#: Decides whether an exception raised by a view is worth another attempt.
RetryFilter = tuple[type[BaseException], ...] | Callable[[BaseException], bool]


@dataclass(frozen=True)
class ViewOptions:
    """How a schedulable view is ordered and called; the keywords of :func:`schedulable`."""

    #: HTTP method used when the order request names none (``None``: ``POST``).
    method: str | None = None
    #: DRF serializer class that validates the envelope's ``data`` when the order is placed.
    data_serializer: type[Serializer] | None = None
    #: DRF serializer class that validates the envelope's ``query`` likewise.
    query_serializer: type[Serializer] | None = None
    #: Further attempts after a retryable exception or a lost worker.
    retries: int = 0
    #: Exception classes (or a predicate) that are retried; others fail the order.
    retry_on: RetryFilter = (Exception,)
    #: Seconds before the first retry; doubled for each further one, with jitter.
    retry_backoff: float = 1.0
    #: Celery routing of the order's message: queue, routing key, priority.
    queue: str | None = None
    routing_key: str | None = None
    priority: int | None = None
    #: Conflict locks: ``True`` for one key from the view name and kwargs, or a
    #: callable of the :class:`~async_orders.envelope.Envelope` returning keys.
    locks: bool | Callable[[Any], Iterable[str]] = False
    #: Seconds an attempt may run: past it the attempt is stopped at its next
    #: checkpoint, or its pool process replaced; ``None``: no limit.
    timeout: float | None = None
    #: Seconds after an order is due within which a worker must start it, else it
    #: fails without running; ``None``: no deadline.
    start_deadline: float | None = None

    def __post_init__(self) -> None:
        if self.method:
            object.__setattr__(self, "method", self.method.upper())
        for name in ("timeout", "start_deadline"):
            seconds = getattr(self, name)
            if seconds is not None and (isinstance(seconds, bool) or not seconds > 0):
                raise ValueError(f"schedulable({name}=...) takes seconds above 0, or None.")

    @property
    def default_method(self) -> str:
        return self.method or "POST"

    def retries_for(self, error: BaseException) -> bool:
        """Whether ``error`` is worth another attempt, by ``retry_on``."""
        if isinstance(self.retry_on, tuple):
            return isinstance(error, self.retry_on)
        return self.retry_on(error)


#: The options that mean something for a task: its queue and priority are the task's
#: own (``@task(queue_name=..., priority=...)``), and it takes no method, query or data.
TASK_OPTIONS = frozenset({"retries", "retry_on", "retry_backoff", "locks"})

#: Opted-in ``django.tasks`` tasks by dotted path, with their options.
_tasks: dict[str, SchedulableTask] = {}


@dataclass(frozen=True)
class SchedulableTask:
    """An opted-in task: what ``POST /async/tasks/<path>/order/`` orders."""

    path: str
    #: The ``django.tasks`` ``Task``.
    task: Any
    options: ViewOptions
    #: Whether :func:`schedulable` was given retry options; else the backend's
    #: (``OrderBackend``'s ``OPTIONS``) apply.
    own_retries: bool = False


@overload
def schedulable(view: V, **options: Any) -> V: ...
@overload
def schedulable(view: None = None, **options: Any) -> Callable[[V], V]: ...
def schedulable(view: V | None = None, **options: Any) -> V | Callable[[V], V]:
    """Opt a view in to being ordered through ``POST /async/<url-name>/order/``.

    Decorate a function view, a class-based view or DRF view class, or one action
    method of a DRF viewset. Put it outermost, above ``@api_view`` and the like, so
    the mark lands on the callable that the URL configuration holds. The keywords
    are the fields of :class:`ViewOptions` (an unknown one is a ``TypeError`` at
    import time). ``data_serializer``/``query_serializer`` validate inputs when the
    order is placed, so bad input fails the client's POST, not a worker later.

    Applied to a ``django.tasks`` task (above ``@task``, or ``schedulable(task)``), it
    makes the task orderable through ``POST /async/tasks/<dotted.path>/order/``; of the
    options only ``retries``, ``retry_on``, ``retry_backoff`` and ``locks`` apply.
    """
    view_options = ViewOptions(**options)

    def mark(target: V) -> V:
        if _is_task(target):
            _opt_in_task(target, view_options, options)
        else:
            setattr(target, OPTIONS_ATTRIBUTE, view_options)
        return target

    return mark if view is None else mark(view)


@dataclass(frozen=True)
class Endpoint:
    """One named route: the callback behind a URL name and the parameters it takes."""

    name: str
    route: str
    callback: Callable[..., Any]
    #: URL parameter name -> its converter (``None`` for a regex group).
    converters: dict[str, Any]

    def options_by_method(self) -> dict[str, ViewOptions]:
        """The HTTP methods this route can be ordered with, and their options."""
        view_class = getattr(self.callback, "cls", None) or getattr(
            self.callback, "view_class", None
        )
        fallback = ViewOptions() if self.name in conf.SCHEDULABLE_VIEWS else None
        actions = getattr(self.callback, "actions", None)
        if actions:  # a DRF viewset route: each method maps to an action method
            return _options_of_actions(view_class, actions, fallback)
        options = _mark(self.callback) or _mark(view_class) or fallback
        if options is None:
            return {}
        return dict.fromkeys(_methods_of(view_class, options), options)

    @property
    def is_schedulable(self) -> bool:
        return bool(self.options_by_method())


def _is_task(target: object) -> bool:
    """Whether ``target`` is a ``django.tasks`` task; the Tasks framework is imported
    only when one of its implementations is, since only then can a task exist."""
    if "django.tasks" not in sys.modules and "django_tasks" not in sys.modules:
        return False
    from async_orders.task_compat import Task

    return isinstance(target, Task)


def _opt_in_task(task: Any, options: ViewOptions, given: dict[str, Any]) -> None:
    unfit = sorted(set(given) - TASK_OPTIONS)
    if unfit:
        raise TypeError(
            f"schedulable() of the task {task.module_path}: {', '.join(unfit)} do not apply "
            f"to a task; it takes {', '.join(sorted(TASK_OPTIONS))}."
        )
    own_retries = bool(set(given) & {"retries", "retry_on", "retry_backoff"})
    _tasks[task.module_path] = SchedulableTask(task.module_path, task, options, own_retries)


def find_task(path: str) -> SchedulableTask | None:
    """The task opted in under the dotted ``path``; ``None`` for any other path (one
    never imported, unknown, or naming a task not opted in alike)."""
    return _tasks.get(path)


def iter_tasks() -> Iterator[SchedulableTask]:
    """Every opted-in task of the modules imported so far, by path."""
    for path in sorted(_tasks):
        yield _tasks[path]


def _mark(target: object) -> ViewOptions | None:
    return getattr(target, OPTIONS_ATTRIBUTE, None)


def _options_of_actions(
    view_class: type | None, actions: dict[str, str], fallback: ViewOptions | None
) -> dict[str, ViewOptions]:
    found = {}
    for method, action in actions.items():
        options = _mark(getattr(view_class, action, None)) or _mark(view_class) or fallback
        if options is not None:
            found[method.upper()] = options
    return found


def _methods_of(view_class: type | None, options: ViewOptions) -> Iterable[str]:
    if view_class is None:
        return (options.method,) if options.method else FUNCTION_VIEW_METHODS
    names = getattr(view_class, "http_method_names", ())
    return [name.upper() for name in names if name != "options" and hasattr(view_class, name)]


def options_for(view_name: str, method: str) -> ViewOptions:
    """The options an order of ``view_name`` with ``method`` runs with; defaults when
    the view is gone or no longer opted in (the order still needs routing)."""
    endpoint = find_endpoint(view_name)
    options = endpoint.options_by_method() if endpoint else {}
    return options.get(method, ViewOptions())


class ShadowedRoute(Resolver404):
    """``reverse()`` of an opted-in URL name leads to a path that another view serves:
    the name is given to a later route too, or an earlier route catches the path."""

    def __init__(self, name: str, path: str) -> None:
        self.name, self.path = name, path
        super().__init__(f"{name!r} leads to {path!r}, which another view serves.")


def route_to(
    endpoint: Endpoint, args: list[Any], kwargs: dict[str, Any]
) -> tuple[str, ResolverMatch]:
    """The path ``reverse(endpoint.name, ...)`` and its ``resolve()`` match, which must be
    the endpoint's own view: an order runs exactly the view that was opted in, or nothing.

    Raises ``NoReverseMatch`` when the arguments do not fit the route,
    :class:`ShadowedRoute` when the path they reverse to is another view's.
    """
    path = reverse(endpoint.name, args=args or None, kwargs=kwargs or None)
    try:
        match = resolve(path)
    except Resolver404:
        raise ShadowedRoute(endpoint.name, path) from None
    if match.func is not endpoint.callback:
        raise ShadowedRoute(endpoint.name, path)
    return path, match


def find_endpoint(name: str) -> Endpoint | None:
    """The route named ``name`` (``"ns:name"`` for a namespaced one) in the root URLconf."""
    return _endpoint_index(get_resolver()).get(name)


def iter_endpoints() -> Iterator[Endpoint]:
    """Every named route of the root URLconf, in URLconf order."""
    yield from _endpoint_index(get_resolver()).values()


def colliding_endpoints() -> dict[str, list[Endpoint]]:
    """URL names given to routes of different views, each with those routes.

    ``reverse()`` picks the last route of a name that fits its arguments, so an
    order of such a name could reach a view other than the one opted in. Routes of
    one view under one name (DRF's format suffixes) are no collision.
    """
    by_name: dict[str, list[Endpoint]] = {}
    for endpoint in _walk(get_resolver().url_patterns, route="", namespace="", converters={}):
        by_name.setdefault(endpoint.name, []).append(endpoint)
    return {
        name: endpoints
        for name, endpoints in by_name.items()
        if len({id(endpoint.callback) for endpoint in endpoints}) > 1
    }


@functools.lru_cache(maxsize=8)
def _endpoint_index(resolver: URLResolver) -> dict[str, Endpoint]:
    # Keyed by the resolver object: Django builds a new one whenever it clears its
    # URL caches, so this index is never staler than Django's own.
    index: dict[str, Endpoint] = {}
    for endpoint in _walk(resolver.url_patterns, route="", namespace="", converters={}):
        index.setdefault(endpoint.name, endpoint)
    return index


def _walk(
    patterns: Iterable[URLPattern | URLResolver],
    route: str,
    namespace: str,
    converters: dict[str, Any],
) -> Iterator[Endpoint]:
    for pattern in patterns:
        here = {**converters, **_converters_of(pattern.pattern)}
        full_route = route + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _walk(pattern.url_patterns, full_route, inner, here)
        elif pattern.name:
            yield Endpoint(namespace + pattern.name, full_route, pattern.callback, here)


def _converters_of(pattern: Any) -> dict[str, Any]:
    """Each named parameter of one pattern, with its converter: ``path("<int:pk>/")``
    has converters; a regex group (``re_path``, DRF routers) has ``None``."""
    regex = getattr(pattern, "regex", None)
    names = dict.fromkeys(regex.groupindex) if regex is not None else {}
    return {**names, **getattr(pattern, "converters", {})}
