"""The process around the app: the Starlette app, where it listens, the HTTP edge, the lean
websocket protocol, and log hygiene."""
