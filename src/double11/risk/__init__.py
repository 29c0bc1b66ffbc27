"""Real-time risk control: features, rules, models and blacklists (the step is a port today)."""
