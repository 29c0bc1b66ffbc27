"""Benchmarks, run by hand; results go in the README with the machine and date."""
