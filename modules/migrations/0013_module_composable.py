from django.db import migrations, models

from composition.engine.composable import composability


def decide_composable(apps, schema_editor):
    """Run the engine's rule on the config every existing module was stored with."""
    Module = apps.get_model("modules", "Module")
    refused = []
    for module in Module.objects.only("id", "adapter_config").iterator(chunk_size=2000):
        ok, reason = composability(module.adapter_config or {})
        if not ok:
            module.composable, module.composable_reason = False, reason[:500]
            refused.append(module)
    Module.objects.bulk_update(refused, ["composable", "composable_reason"], batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [
        ("modules", "0012_name_part_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="module",
            name="composable",
            field=models.BooleanField(default=True),
        ),
        migrations.AddField(
            model_name="module",
            name="composable_reason",
            field=models.CharField(blank=True, max_length=500),
        ),
        migrations.RunPython(decide_composable, migrations.RunPython.noop),
    ]
