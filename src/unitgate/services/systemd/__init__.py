"""Adapters to systemd: the one spawn path, systemctl, the journal, D-Bus signals, pure parsing."""
