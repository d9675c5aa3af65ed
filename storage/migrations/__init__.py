"""Alembic migrations; `pulse init` runs them."""
