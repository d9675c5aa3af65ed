"""Persistence: SQLAlchemy models, repositories, Alembic migrations, plan import and export."""
