"""unitgate's benchmark: `make bench` (python -m bench)."""
