"""unitgate deployed as an admin deploys it, on a real systemd as PID 1 (see container.py)."""
