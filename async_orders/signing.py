"""Signing webhook bodies, and checking a signature on the receiving end.

Standard library only, so a receiver can use :func:`verify_signature` (or copy these
lines) without Django. The header is ``Async-Orders-Signature: t=<unix time>,v1=<hex>``
where ``<hex>`` is HMAC-SHA256, keyed with the shared secret, of ``"<t>." + body``.
Signing the timestamp with the body lets a receiver refuse old deliveries replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Async-Orders-Signature"
#: Seconds a signature stays acceptable by default; allows for clock skew and retries.
DEFAULT_TOLERANCE = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The value of :data:`SIGNATURE_HEADER` for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify_signature(
    secret: str,
    body: bytes,
    header: str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """Whether ``header`` signs exactly ``body`` with ``secret``, within ``tolerance`` s.

    Pass the raw request body, before any JSON parsing: re-encoding changes the bytes.
    """
    fields = dict(part.strip().split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(fields.get("v1", ""), _mac(secret, timestamp, body))


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
