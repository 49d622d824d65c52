from django.db import migrations

from modules.db import PostgreSQLOnly


class Migration(migrations.Migration):
    dependencies = [
        ("modules", "0011_ranked_search_index"),
    ]

    operations = [
        # /api/models?search= matches a part of module names in any case
        # (Django's icontains: UPPER(name) LIKE UPPER('%…%')): trigrams of the
        # upper-cased name answer it without reading every module. Not
        # declared on the model, whose own indexes are on plain columns.
        PostgreSQLOnly(
            migrations.RunSQL(
                sql=(
                    "CREATE INDEX module_name_upper_trigram ON modules_module "
                    "USING gin (UPPER(name) gin_trgm_ops)"
                ),
                reverse_sql="DROP INDEX module_name_upper_trigram",
            )
        ),
    ]
