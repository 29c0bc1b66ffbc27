"""The way of one event, and the ports it needs."""
