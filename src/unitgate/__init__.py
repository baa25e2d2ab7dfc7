"""unitgate: a GraphQL API over the allowlisted systemd services of a web server."""

__version__ = "0.1.0"
