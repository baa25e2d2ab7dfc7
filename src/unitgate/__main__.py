"""Entry point for `python -m unitgate`."""

from unitgate.cli import main

raise SystemExit(main())
