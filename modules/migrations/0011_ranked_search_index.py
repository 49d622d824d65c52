from django.db import migrations

from modules.db import PostgreSQLOnly


class Migration(migrations.Migration):
    dependencies = [
        ("modules", "0010_module_name_end_anchor"),
    ]

    operations = [
        # Relevance ranks the most downloaded matches of a common word
        # (modules/selectors.py): the search walks modules in download order
        # until it has enough of them, and counts them. With the visibility,
        # the owner and the words in the index, that walk reads the index
        # alone (an index-only scan), not a table row per module. Not declared
        # on the model: it serves that hand-shaped query, not a field.
        PostgreSQLOnly(
            migrations.RunSQL(
                sql=(
                    "CREATE INDEX module_by_downloads_with_words ON modules_module "
                    "(download_count DESC, id DESC) INCLUDE (visibility, owner_id, search_vector)"
                ),
                reverse_sql="DROP INDEX module_by_downloads_with_words",
            )
        ),
    ]
