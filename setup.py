"""Building the wheel also fetches GraphiQL's files into it, each checked against the integrity
hash strawberry's page gives it, so a server needs no npm and a reinstall keeps them."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent


class BuildPyWithGraphiQL(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # a checkout serves what `unitgate graphiql-assets` (run by make) put in src/
        target = Path(self.build_lib) / "unitgate" / "static" / "graphiql"
        checked_out = HERE / "src" / "unitgate" / "static" / "graphiql"
        sys.path.insert(0, str(HERE / "src"))
        try:
            from unitgate.deploy import graphiql_fetch
            from unitgate.view import graphiql_assets
        finally:
            sys.path.pop(0)
        assets = graphiql_assets.vendored_assets()
        if checked_out.is_dir() and not graphiql_assets.missing(checked_out, assets):
            shutil.copytree(checked_out, target, dirs_exist_ok=True)  # already fetched and checked
        elif shutil.which("npm"):
            graphiql_fetch.fetch(target)  # refuses any file whose hash does not match
        else:
            print(
                "warning: npm is not installed, so this wheel has no GraphiQL files (the page will "
                "load them from a CDN); build it where npm is, or run `unitgate graphiql-assets`",
                file=sys.stderr,
            )


setup(cmdclass={"build_py": BuildPyWithGraphiQL})
