from django.db import migrations

from modules.db import PostgreSQLOnly

WITH_WORDS = (
    "CREATE INDEX module_by_downloads_with_words ON modules_module "
    "(download_count DESC, id DESC) INCLUDE (visibility, owner_id, search_vector{})"
)


class Migration(migrations.Migration):
    dependencies = [
        ("modules", "0015_module_fingerprint"),
    ]

    operations = [
        # /api/models finds a page's modules by walking the downloads order
        # until it has enough that match a part of a name, then reads those
        # rows alone (modules/hub_protocol/lists.py). With the name in the
        # index, that walk reads the index alone, as relevance's does.
        PostgreSQLOnly(
            migrations.RunSQL(
                sql=[
                    "DROP INDEX module_by_downloads_with_words",
                    WITH_WORDS.format(", name"),
                ],
                reverse_sql=[
                    "DROP INDEX module_by_downloads_with_words",
                    WITH_WORDS.format(""),
                ],
            )
        ),
    ]
