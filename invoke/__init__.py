"""taskroom.invoke."""
