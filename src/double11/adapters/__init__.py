"""Stores: memory (shipped, for tests and the simulator), SQLite, PostgreSQL and Redis."""
