"""A private systemd user manager for the tests and the demo, and the demos built on it."""
