"""The table of the "throttle" cache (HUB_THROTTLE_CACHE_URL's default, dbcache://).

``migrate`` is the step every installation runs, so it creates the table; the
command makes the table of each database cache in CACHES and skips the others
(a Redis cache needs none). Pointing HUB_THROTTLE_CACHE_URL at another table
later needs ``manage.py createcachetable``.
"""

from django.core.management import call_command
from django.db import migrations


def create_cache_tables(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = []

    operations = [migrations.RunPython(create_cache_tables, migrations.RunPython.noop)]
