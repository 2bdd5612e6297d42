"""Labels: a small string -> string map a client (or the view it ordered) puts on an
order, to find it again: ``GET /async/orders/?label=tenant:acme``.

The bounds keep a label a tag, not a second payload: an index over them stays small
and a listing filtered by several stays one indexed lookup. On PostgreSQL the filter
is JSON containment (``labels @> {...}``), which the GIN index of migration 0012
serves; other databases compare each key's text, unindexed but right.
"""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.models import QuerySet
from django.db.models.fields.json import KeyTransform
from django.utils.translation import gettext

MAX_LABELS = 16
MAX_KEY_LENGTH = 64
MAX_VALUE_LENGTH = 256


def label_errors(labels: Any) -> dict[str, list[str]]:
    """What is wrong with ``labels``, by the field a client must fix (``labels.<key>``
    for one label); empty when they are valid."""
    if not isinstance(labels, dict):
        return {"labels": [gettext("Must be an object of string keys and string values.")]}
    if len(labels) > MAX_LABELS:
        message = gettext("At most %(most)d labels; %(count)d were given.")
        return {"labels": [message % {"most": MAX_LABELS, "count": len(labels)}]}
    errors = {}
    for key, value in labels.items():
        if problem := _problem(key, value):
            errors[f"labels.{key[:MAX_KEY_LENGTH]}"] = [problem]
    return errors


def _problem(key: str, value: Any) -> str | None:
    if not key or len(key) > MAX_KEY_LENGTH:
        return gettext("A label's key is 1 to %(most)d characters.") % {"most": MAX_KEY_LENGTH}
    if not isinstance(value, str):
        return gettext("A label's value is a string.")
    if len(value) > MAX_VALUE_LENGTH:
        message = gettext("A label's value is at most %(most)d characters.")
        return message % {"most": MAX_VALUE_LENGTH}
    return None


def parse_filters(raw: list[str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """``?label=key:value`` parameters as one map of the labels an order must all
    have, and the errors of those that are malformed (split at the first colon, so a
    value may hold colons; a key may not)."""
    wanted: dict[str, str] = {}
    for item in raw:
        key, colon, value = item.partition(":")
        if not colon or _problem(key, value):
            message = gettext("%(label)s is not key:value (a key of 1 to %(most)d characters).")
            return {}, {"label": [message % {"label": repr(item), "most": MAX_KEY_LENGTH}]}
        wanted[key] = value
    return wanted, {}


def having(queryset: QuerySet[Any], wanted: dict[str, str]) -> QuerySet[Any]:
    """The orders of ``queryset`` that carry every label of ``wanted``."""
    if not wanted:
        return queryset
    if connections[queryset.db].vendor == "postgresql":
        return queryset.filter(labels__contains=wanted)
    for index, (key, value) in enumerate(wanted.items()):
        alias = f"_label_{index}"
        queryset = queryset.alias(**{alias: KeyTransform(key, "labels")})
        queryset = queryset.filter(**{alias: value})
    return queryset
