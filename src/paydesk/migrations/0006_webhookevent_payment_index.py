"""Index ``WebhookEvent.payment_id`` once, not twice.

``db_index=True`` on a ``CharField`` makes PostgreSQL's schema editor build two indexes: a
plain one and a ``varchar_pattern_ops`` one for ``LIKE``. No query looks a delivery up by
a pattern of its payment id, and every accepted delivery wrote both. The model now names a
plain index in ``Meta.indexes`` instead.

The database side keeps the existing plain index (renamed, not rebuilt, so upgrading does
not lock a large table while an index is built) and drops only the ``LIKE`` one.
"""

from django.db import migrations, models

NEW = "paydesk_wh_payment"


def _payment_id_indexes(schema_editor, table):
    """Names of the single-column, non-unique indexes on payment_id (Django's db_index)."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return sorted(
        name
        for name, info in constraints.items()
        if info["index"] and not info["unique"] and info["columns"] == ["payment_id"]
    )


def forwards(apps, schema_editor):
    model = apps.get_model("paydesk", "WebhookEvent")
    qn = schema_editor.quote_name
    table = model._meta.db_table
    names = [name for name in _payment_id_indexes(schema_editor, table) if name != NEW]
    plain = [name for name in names if not name.endswith("_like")]
    for name in names:
        if name not in plain[:1]:
            schema_editor.execute(f"DROP INDEX {qn(name)}")
    index = models.Index(fields=["payment_id"], name=NEW)
    if plain and schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER INDEX {qn(plain[0])} RENAME TO {qn(NEW)}")
    else:
        if plain:
            schema_editor.execute(f"DROP INDEX {qn(plain[0])}")
        schema_editor.add_index(model, index)


def backwards(apps, schema_editor):
    model = apps.get_model("paydesk", "WebhookEvent")
    schema_editor.remove_index(model, models.Index(fields=["payment_id"], name=NEW))
    old = models.CharField(max_length=40, blank=True)
    old.set_attributes_from_name("payment_id")
    new = models.CharField(max_length=40, blank=True, db_index=True)
    new.set_attributes_from_name("payment_id")
    schema_editor.alter_field(model, old, new)


class Migration(migrations.Migration):
    dependencies = [("paydesk", "0005_fraud_analytics")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="webhookevent",
                    name="payment_id",
                    field=models.CharField(blank=True, max_length=40),
                ),
                migrations.AddIndex(
                    model_name="webhookevent",
                    index=models.Index(fields=["payment_id"], name=NEW),
                ),
            ],
            database_operations=[migrations.RunPython(forwards, backwards)],
        )
    ]
