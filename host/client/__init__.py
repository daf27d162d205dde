"""The room client: a participant's connection to a room, its task API."""
