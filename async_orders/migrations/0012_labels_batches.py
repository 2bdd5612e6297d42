"""Labels and batches (issue 27, items 4 and 5).

Written beside 0011 (time limits and attempts, on another branch): it depends on
0010 here, and is rewired after 0011 when both are merged.

The GIN index on ``labels`` is PostgreSQL's alone, so it is made by SQL on that
database only and is not in the model's ``Meta`` (SQLite has no GIN; ``?label=``
still works there, unindexed). ``jsonb_path_ops``: smaller and faster than the
default operator class, and ``@>`` (containment), the one operator the listing uses,
is all it serves.
"""

from django.db import migrations, models

GIN = "async_order_labels_gin"


def create_gin(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {GIN} ON async_orders_order "
            "USING gin (labels jsonb_path_ops)"
        )


def drop_gin(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {GIN}")


class Migration(migrations.Migration):
    dependencies = [
        ("async_orders", "0011_external_task"),
    ]

    operations = [
        migrations.AddField(
            model_name="order",
            name="labels",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="The client's (and the view's) string labels, to find the order by.",
            ),
        ),
        migrations.AddField(
            model_name="order",
            name="batch_id",
            field=models.UUIDField(
                blank=True,
                help_text="The batch it was placed in (POST /async/batches/).",
                null=True,
            ),
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(
                condition=models.Q(("batch_id__isnull", False)),
                fields=["batch_id"],
                name="async_order_batch",
            ),
        ),
        migrations.RunPython(create_gin, drop_gin, elidable=False),
    ]
