"""Validating an order request (the *envelope*) against the view it orders.

Everything that can be checked before an order exists is checked here, so that a
bad request fails in the client's POST with a 400 naming the field, not minutes
later in a worker.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from django.urls import NoReverseMatch
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy
from rest_framework import serializers

from async_orders.callback_policy import check_callback_url
from async_orders.conf import conf
from async_orders.exceptions import InvalidEnvelope, ViewShadowed
from async_orders.labels import label_errors
from async_orders.locks import MAX_KEY_LENGTH, lock_key
from async_orders.registry import Endpoint, ShadowedRoute, ViewOptions, route_to

JSONScalar = str | int | float | bool | None

#: Text no database keeps: NUL (PostgreSQL's jsonb refuses it) and lone surrogates
#: (no UTF-8 encoding exists for them). JSON's ``\u`` escapes can carry both.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = gettext_lazy(
    "Holds a NUL character or a lone surrogate (U+D800-U+DFFF), which cannot be stored."
)


#: Envelope fields stored on the order under the same names.
ORDER_FIELDS = (
    "view_name",
    "method",
    "args",
    "kwargs",
    "query",
    "data",
    "run_at",
    "fingerprint",
    "lock_keys",
    "max_attempts",
    "callback_url",
    "kind",
    "queue",
    "priority",
    "task_backend",
    "labels",
    "timeout",
    "start_deadline",
)


@dataclass(frozen=True)
class Envelope:
    """A validated order request: everything the worker needs to call the view."""

    view_name: str
    method: str
    args: list[Any]
    kwargs: dict[str, Any]
    query: dict[str, Any]
    data: Any
    run_at: datetime | None
    #: Hash of the request as sent, to tell an Idempotency-Key retry from a reuse.
    fingerprint: str = ""
    #: Conflict-lock keys the order holds while active (the view's ``locks`` option).
    lock_keys: list[str] = field(default_factory=list)
    #: 1 + the view's ``retries``.
    max_attempts: int = 1
    #: Where the finished order is POSTed (a webhook); empty: nowhere.
    callback_url: str = ""
    #: What the worker calls (an :class:`~async_orders.models.OrderKind` value): a view,
    #: or a task function whose dotted path is ``view_name``.
    kind: str = "view"
    #: Routing chosen when the order was placed (a task's queue and priority); empty
    #: and ``None`` leave it to the view's options.
    queue: str = ""
    priority: int | None = None
    #: The ``TASKS`` alias a task was enqueued with.
    task_backend: str = ""
    #: The client's labels (:mod:`async_orders.labels`).
    labels: dict[str, str] = field(default_factory=dict)
    #: Time limits in seconds (the order's, else the view's); ``None``: none.
    timeout: float | None = None
    start_deadline: float | None = None

    def order_fields(self) -> dict[str, Any]:
        """The fields of an :class:`~async_orders.models.Order` this envelope fills."""
        return {name: getattr(self, name) for name in ORDER_FIELDS}

    @classmethod
    def of_order(cls, order: Any) -> Envelope:
        """The envelope an order was placed with (to place it again)."""
        return cls(**{name: getattr(order, name) for name in ORDER_FIELDS})


class SecondsField(serializers.FloatField):
    """A number of seconds; JSON ``true``/``false`` are not numbers, whatever Python says."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class EnvelopeSerializer(serializers.Serializer):
    """The shape of the POST body; every key is optional and no other key is allowed."""

    args = serializers.ListField(default=list)
    kwargs = serializers.DictField(default=dict)
    method = serializers.RegexField(r"^[A-Za-z]{1,10}$", required=False)
    query = serializers.DictField(default=dict)
    # DRF's metaclass takes declared fields off the class, so this envelope key does
    # not replace Serializer.data; mypy sees only the assignment.
    data = serializers.JSONField(  # type: ignore[assignment]
        required=False, default=None, allow_null=True
    )
    countdown = SecondsField(required=False, min_value=0)
    eta = serializers.DateTimeField(required=False)
    callback_url = serializers.URLField(required=False, max_length=2000)
    labels = serializers.JSONField(required=False, default=dict)
    timeout = SecondsField(required=False, min_value=0.001)
    start_deadline = SecondsField(required=False, min_value=0.001)

    def get_fields(self) -> dict[str, serializers.Field]:
        """The declared fields, each copied shallowly. DRF deep-copies them for every
        serializer: 0.26 ms of the 0.67 that validating an envelope took (``python -m
        benchmarks.profile --time envelope``). None of these fields keeps anything
        that validating changes, so a copy bound to this serializer is all each needs
        of its own."""
        return {name: copy.copy(field) for name, field in self._declared_fields.items()}

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                allowed = {"allowed": ", ".join(sorted(self.fields))}
                message = gettext("Unknown key; the allowed keys are %(allowed)s.") % allowed
                raise serializers.ValidationError({key: [message] for key in unknown})
        return super().to_internal_value(data)

    def validate_query(self, query: dict[str, Any]) -> dict[str, Any]:
        for name, value in query.items():
            values = value if isinstance(value, list) else [value]
            if not all(isinstance(item, JSONScalar) for item in values):
                raise serializers.ValidationError(
                    gettext("%(name)s must be a string, number or a list of them.")
                    % {"name": repr(name)}
                )
        return query

    def validate_callback_url(self, url: str) -> str:
        try:
            check_callback_url(url)
        except ValueError as refusal:
            raise serializers.ValidationError(str(refusal)) from None
        return url

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "countdown" in attrs and "eta" in attrs:
            raise serializers.ValidationError(
                {"eta": [gettext("Give countdown or eta, not both.")]}
            )
        return self.validate_arguments(attrs)

    def validate_arguments(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """A view's route takes positional or named arguments, never both."""
        if attrs.get("args") and attrs.get("kwargs"):
            raise serializers.ValidationError({"args": [gettext("Give args or kwargs, not both.")]})
        return attrs


class TaskEnvelopeSerializer(EnvelopeSerializer):
    """The POST body of a task's order: the task's positional and named arguments (both
    may be given), when to run it and where to report; every key is optional and no
    other key is allowed."""

    # A view's envelope without what only a view takes; task_orders binds the
    # arguments to the task's signature.
    method = None  # type: ignore[assignment]
    query = None  # type: ignore[assignment]
    data = None  # type: ignore[assignment]
    # No time limits yet: a task declares none for an order's to stay under.
    timeout = None  # type: ignore[assignment]
    start_deadline = None  # type: ignore[assignment]

    def validate_arguments(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return attrs


def validated_fields(serializer_class: type[EnvelopeSerializer], body: Any) -> dict[str, Any]:
    """The body's fields as ``serializer_class`` validates them, its labels checked
    too: what a view's and a task's envelope share. :class:`InvalidEnvelope` naming
    each bad field."""
    check_text(body)
    serializer = serializer_class(data=body)
    if not serializer.is_valid():
        raise InvalidEnvelope(flatten(serializer.errors))
    fields: dict[str, Any] = serializer.validated_data
    if errors := label_errors(fields["labels"]):
        raise InvalidEnvelope(errors)
    return fields


def parse_envelope(endpoint: Endpoint, body: Any) -> Envelope:
    """Validate ``body`` for ``endpoint``; raise :class:`InvalidEnvelope` naming each bad field."""
    fields = validated_fields(EnvelopeSerializer, body)
    by_method = endpoint.options_by_method()
    method = _method(endpoint, by_method, fields.get("method"))
    _reverse(endpoint, fields["args"], fields["kwargs"])
    options = by_method[method]
    _check_inputs(options, fields)
    envelope = Envelope(
        view_name=endpoint.name,
        method=method,
        args=fields["args"],
        kwargs=fields["kwargs"],
        query=fields["query"],
        data=fields["data"],
        run_at=run_at_of(fields.get("countdown"), fields.get("eta")),
        fingerprint=fingerprint(endpoint.name, body),
        max_attempts=1 + options.retries,
        callback_url=fields.get("callback_url", ""),
        labels=fields["labels"],
        timeout=_time_limit(options, fields, "timeout"),
        start_deadline=_time_limit(options, fields, "start_deadline"),
    )
    return replace(envelope, lock_keys=keys_for(options, envelope))


def _time_limit(options: ViewOptions, fields: dict[str, Any], name: str) -> float | None:
    """The order's ``timeout`` or ``start_deadline`` (``name``): as asked, never above
    the view's (a client may shorten a limit, never lift it), else the view's."""
    asked, most = fields.get(name), getattr(options, name)
    if asked is not None and most is not None and asked > most:
        message = gettext("At most %(seconds)s seconds for this view.")
        raise InvalidEnvelope({name: [message % {"seconds": f"{most:g}"}]})
    return asked if asked is not None else most


def keys_for(options: ViewOptions, envelope: Envelope) -> list[str]:
    """The keys an order takes, from the view's ``locks`` option: computed where the
    envelope is made, from the envelope; :mod:`async_orders.locks` takes and frees them."""
    if not options.locks:
        return []
    if options.locks is True:
        return [lock_key(envelope.view_name, **envelope.kwargs)]
    keys = sorted(set(options.locks(envelope)))
    return [key if len(key) <= MAX_KEY_LENGTH else lock_key("custom", key=key) for key in keys]


def check_text(body: Any) -> None:
    """Raise :class:`InvalidEnvelope` naming each place in ``body`` (keys included) that
    holds unstorable text. Walked with a stack: JSON nests deeper than Python recurses."""
    errors: dict[str, list[str]] = {}
    pending: list[tuple[str, Any]] = [("body", body)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if UNSTORABLE.search(key):
                    errors[where] = [
                        gettext("A key: %(problem)s") % {"problem": UNSTORABLE_MESSAGE}
                    ]
                else:
                    pending.append((_member(where, key), item))
        elif isinstance(value, list):
            pending.extend((_member(where, str(index)), item) for index, item in enumerate(value))
        elif isinstance(value, str) and UNSTORABLE.search(value):
            errors[where] = [str(UNSTORABLE_MESSAGE)]
    if errors:
        raise InvalidEnvelope(errors)


def _member(where: str, name: str) -> str:
    return name if where == "body" else f"{where}.{name}"


def fingerprint(view_name: str, body: dict[str, Any]) -> str:
    """What tells an ``Idempotency-Key`` retry (the same request) from a reuse."""
    canonical = json.dumps([view_name, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _check_inputs(options: ViewOptions, fields: dict[str, Any]) -> None:
    """Validate ``data`` and ``query`` with the serializers the view named, if any."""
    errors: dict[str, list[str]] = {}
    for key, serializer_class in (
        ("data", options.data_serializer),
        ("query", options.query_serializer),
    ):
        if serializer_class is None:
            continue
        serializer = serializer_class(data=fields[key] if fields[key] is not None else {})
        if not serializer.is_valid():
            errors.update(_prefixed(key, flatten(serializer.errors)))
    if errors:
        raise InvalidEnvelope(errors)


def _prefixed(key: str, errors: dict[str, list[str]]) -> dict[str, list[str]]:
    return {
        key if name == "body" else f"{key}.{name}": messages for name, messages in errors.items()
    }


def flatten(errors: Any) -> dict[str, list[str]]:
    if isinstance(errors, list):  # the body was not a JSON object at all
        return {"body": [str(error) for error in errors]}
    return {
        "body" if name == "non_field_errors" else name: _messages(value)
        for name, value in errors.items()
    }


def _messages(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [f"{key}: {' '.join(_messages(inner))}" for key, inner in value.items()]
    if isinstance(value, list):
        return [message for item in value for message in _messages(item)]
    return [str(value)]


def _method(endpoint: Endpoint, options: dict[str, ViewOptions], requested: str | None) -> str:
    method = (requested or next(iter(options.values())).default_method).upper()
    if method not in options:
        message = gettext("%(view)s cannot be ordered with %(method)s; use %(accepted)s.")
        accepted = ", ".join(sorted(options))
        raise InvalidEnvelope(
            {
                "method": [
                    message % {"view": repr(endpoint.name), "method": method, "accepted": accepted}
                ]
            }
        )
    return method


def _reverse(endpoint: Endpoint, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Raise :class:`InvalidEnvelope` unless the arguments reverse to a path, and
    :class:`ViewShadowed` unless that path resolves to the endpoint's own view."""
    _check_kwargs(endpoint, kwargs)
    try:
        route_to(endpoint, args, kwargs)
    except NoReverseMatch:
        message = gettext("These arguments do not fit the route %(route)s.")
        raise InvalidEnvelope({"kwargs": [message % {"route": repr(endpoint.route)}]}) from None
    except ShadowedRoute as shadowed:
        raise ViewShadowed(shadowed.name, shadowed.path) from None


def _check_kwargs(endpoint: Endpoint, kwargs: dict[str, Any]) -> None:
    errors: dict[str, list[str]] = {}
    for name in kwargs.keys() - endpoint.converters.keys():
        message = gettext("The route %(route)s has no parameter %(name)s.")
        errors[f"kwargs.{name}"] = [message % {"route": repr(endpoint.route), "name": repr(name)}]
    for name, converter in endpoint.converters.items():
        if name in kwargs and converter is not None and not _fits(converter, kwargs[name]):
            message = gettext("%(value)s does not fit the parameter of the route %(route)s.")
            errors[f"kwargs.{name}"] = [
                message % {"value": repr(kwargs[name]), "route": repr(endpoint.route)}
            ]
    if errors:
        raise InvalidEnvelope(errors)


def _fits(converter: Any, value: Any) -> bool:
    if isinstance(value, dict | list | bool) or value is None:
        return False
    try:
        text = str(converter.to_url(value))
    except (ValueError, TypeError):
        return False
    return re.fullmatch(converter.regex, text) is not None


def run_at_of(countdown: float | None, eta: datetime | None) -> datetime | None:
    """When the order may run, from the envelope's ``countdown`` or ``eta``; ``None``
    for now; :class:`InvalidEnvelope` past ``MAX_SCHEDULE_SECONDS``."""
    now = timezone.now()
    horizon = conf.MAX_SCHEDULE_SECONDS
    if countdown is not None and countdown > horizon:  # before timedelta() can overflow
        raise InvalidEnvelope({"countdown": [_too_far_ahead(horizon)]})
    run_at = now + timedelta(seconds=countdown) if countdown is not None else eta
    if run_at is None or run_at <= now:  # none given, or due already: run as soon as possible
        return None
    if run_at - now > timedelta(seconds=horizon):
        field = "countdown" if countdown is not None else "eta"
        raise InvalidEnvelope({field: [_too_far_ahead(horizon)]})
    return run_at


def _too_far_ahead(horizon: float) -> str:
    message = gettext("Orders can be scheduled at most %(seconds)s seconds ahead.")
    return message % {"seconds": f"{horizon:g}"}
