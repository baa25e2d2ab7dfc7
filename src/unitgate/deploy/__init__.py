"""Putting unitgate on a server: setup (the API, the agent, nginx), doctor, the privilege files,
the fleet's host changes; and the unit files it installs, beside them."""
