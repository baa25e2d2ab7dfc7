"""Everything that talks to systemd; nothing here knows about GraphQL."""
