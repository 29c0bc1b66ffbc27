"""Unit tests: the domain and the engine on the memory store."""
