"""The survey database: schema, engines, migrations and read helpers."""
