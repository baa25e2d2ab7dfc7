"""The strawberry view and its ASGI concerns, one per module."""
