"""What an order's Celery message carries, beside a raw task's: issue 28 asked whether
a lighter message would make the order cheaper for Celery's main process.

One order is published as placing publishes it, and one raw no-op task with
``delay()``, into the benchmark queue while no worker runs; each message is then read
back from Redis and its size printed (whole, headers, decoded body), with the headers
that are set. Both are Celery's protocol 2; whatever they differ in is the order's.

    .venv/bin/python -m benchmarks.message_size
"""

from __future__ import annotations

import base64
import json

from benchmarks import harness


def queued_messages() -> list[bytes]:
    from django.conf import settings

    from benchmarks import celery as celery_app

    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    return celery_app.redis_client().lrange(queue, 0, -1)


def describe(raw: bytes) -> str:
    message = json.loads(raw)
    headers = message["headers"]
    body = base64.b64decode(message["body"])
    shown = {name: value for name, value in headers.items() if value not in (None, [], {}, "")}
    return (
        f"{headers['task']}: {len(raw)} bytes (headers {len(json.dumps(headers))}, "
        f"body {len(body)})\n    {shown}"
    )


def run(database: str) -> None:
    from async_orders.broker.publishing import send_order
    from async_orders.models import Order
    from benchmarks.celery import noop_task

    harness.purge_queue()
    send_order(Order.objects.create(view_name="noop", origin="http://127.0.0.1"))
    noop_task.delay()
    for raw in queued_messages():
        harness.log(describe(raw))
    harness.purge_queue()


if __name__ == "__main__":
    harness.main(run)
