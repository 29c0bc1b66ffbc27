"""One suite of store contract tests, run against every store."""
