"""Token signing and checking, and webhook signatures."""
