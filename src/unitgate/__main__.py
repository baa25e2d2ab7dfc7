"""Entry point for `python -m unitgate`."""

from unitgate.cli.main import main

raise SystemExit(main())
