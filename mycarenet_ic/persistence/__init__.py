"""SQLAlchemy storage: tables, migrations, audit chain, replay cache, pseudonyms."""
