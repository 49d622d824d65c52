"""Database features that exist on PostgreSQL only.

The registry runs on SQLite too; these let one set of migrations declare
PostgreSQL's search indexes and extensions while SQLite skips them.
"""

from django.db.migrations.operations.base import Operation


class PostgreSQLOnly(Operation):
    """Apply the wrapped operation's schema change on PostgreSQL only.

    The migration state always records it, so the models (which declare the
    index) and the migrations agree on every database.
    """

    reduces_to_sql = False

    def __init__(self, operation: Operation):
        self.operation = operation

    def deconstruct(self):
        return (self.__class__.__qualname__, [self.operation], {})

    def state_forwards(self, app_label, state):
        self.operation.state_forwards(app_label, state)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            self.operation.database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            self.operation.database_backwards(app_label, schema_editor, from_state, to_state)

    def describe(self):
        return f"{self.operation.describe()} (PostgreSQL only)"
