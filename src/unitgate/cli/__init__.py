"""The command line: `unitgate` and its commands (`main` is the console script's entry)."""

from unitgate.cli.main import main as main
