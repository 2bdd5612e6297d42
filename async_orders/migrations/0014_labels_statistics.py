"""Finer planner statistics on ``labels`` (PostgreSQL only).

The planner estimates ``labels @> '{"tenant": "t7"}'`` from the column's histogram,
and a label found on none of its bounds is taken for a rare one, on one bound for a
share of one bucket. With the default 100 buckets a label that 1 % of a requester's
million orders carry was taken for a rare one after 5 ANALYZEs in 12: the first page
then read and sorted all 10,000 matches (16-75 ms instead of 2-3 ms). With 300, a
label that 50 orders carry sat on a bound after 1 ANALYZE in 12, was estimated at
3,334 rows, and its page walked the whole requester index (557 ms). With 1000, in 36
ANALYZEs the 1 % label always walked the index (at most 2.8 ms) and the rare one
never did (its highest estimate, 992 rows, still takes the GIN index); ANALYZE of
that table takes 4.2-5.1 s instead of 0.3-0.5 s. ``python -m
benchmarks.label_statistics`` measures it (docs/performance.md, row 32).
"""

from django.db import migrations

#: The histogram size ANALYZE keeps for ``labels``; -1 is the server's default.
LABELS_STATISTICS = 1000


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
