"""The pure rules of the business: standard library only, no I/O."""
