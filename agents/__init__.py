"""taskroom.agents."""
