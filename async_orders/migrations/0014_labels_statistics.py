"""Finer planner statistics on ``labels`` (PostgreSQL only).

The planner estimates ``labels @> '{"tenant": "t7"}'`` from the column's histogram.
With the default 100 buckets a label that 1 % of a requester's orders carry was
sometimes estimated at 100 rows in a million (1 ANALYZE in 8): the first page then
read and sorted all 10,000 matches, 20-57 ms instead of 2-3 ms. With 300 buckets, 12
ANALYZEs in 12 estimated it at 6,600-20,000 rows, and the plan walked the requester's
index. ANALYZE of that million-row table then takes 1.3-2.0 s instead of 0.4 s
(docs/performance.md, row 32).
"""

from django.db import migrations

#: The histogram size ANALYZE keeps for ``labels``; -1 is the server's default.
LABELS_STATISTICS = 300


def _set_statistics(target: int):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        table = schema_editor.quote_name(apps.get_model("async_orders", "Order")._meta.db_table)
        schema_editor.execute(f"ALTER TABLE {table} ALTER COLUMN labels SET STATISTICS {target}")

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("async_orders", "0013_lifecycle"),
    ]

    operations = [
        migrations.RunPython(
            _set_statistics(LABELS_STATISTICS), _set_statistics(-1), elidable=False
        ),
    ]
