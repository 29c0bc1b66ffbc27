"""Scale-out integration tests: real PostgreSQL and Redis, several processes, crashes."""
