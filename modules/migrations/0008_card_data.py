# The card's front matter is stored once as JSON instead of being parsed on every
# listing and repository info. Existing rows are filled from their card text with the
# same parser uploads use now: a card it refuses (YAML aliases, metadata over 64 KiB)
# gets empty data, so a hostile card stored earlier is never expanded, here or later.

from django.db import migrations, models

from modules.cards import stored_card_data

BATCH = 500


def fill_card_data(apps, schema_editor):
    Module = apps.get_model("modules", "Module")
    last = 0
    # Batches by primary key: no cursor stays open on the table while it is written.
    rows = Module.objects.only("pk", "card").order_by("pk")
    while batch := list(rows.filter(pk__gt=last)[:BATCH]):
        for module in batch:
            module.card_data = stored_card_data(module.card)
        Module.objects.bulk_update(batch, ["card_data"])
        last = batch[-1].pk


class Migration(migrations.Migration):

    dependencies = [
        ("modules", "0007_import_cancel"),
    ]

    operations = [
        migrations.AddField(
            model_name="module",
            name="card_data",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.RunPython(fill_card_data, migrations.RunPython.noop, elidable=True),
    ]
