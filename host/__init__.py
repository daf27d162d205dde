"""taskroom.host."""
