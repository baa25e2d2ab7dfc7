"""`unitgate graphiql-assets`, run by make and by the wheel's build: the files the GraphiQL page
names, downloaded with npm and kept only when their bytes match their integrity hashes."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from unitgate.view.graphiql_assets import DEFAULT_DIR, Asset, vendored_assets


def fetch(directory: Path, npm: str = "npm") -> list[Asset]:
    """Download each package the page names with `npm pack` and keep the files it uses,
    refusing any whose bytes do not match the page's integrity hash."""
    assets = vendored_assets()
    with tempfile.TemporaryDirectory(prefix="unitgate-graphiql-") as scratch:
        tarballs: dict[str, Path] = {}
        for asset in assets:
            spec = f"{asset.package}@{asset.version}"
            if spec not in tarballs:
                name = (
                    subprocess.run(
                        [npm, "pack", spec, "--pack-destination", scratch, "--silent"],
                        check=True,
                        capture_output=True,
                        text=True,
                        timeout=300,
                    )
                    .stdout.strip()
                    .splitlines()[-1]
                )
                tarballs[spec] = Path(scratch) / name
            with tarfile.open(tarballs[spec]) as tarball:
                member = tarball.extractfile(f"package/{asset.path}")
                if member is None:
                    raise ValueError(f"{spec} has no {asset.path}")
                content = member.read()
            if not asset.matches(content):
                raise ValueError(f"{spec}/{asset.path} does not match the page's integrity hash")
            target = directory / asset.local
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as out:
                out.write(content)
    return assets


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="unitgate graphiql-assets", description=fetch.__doc__)
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help=f"where to put them (default {DEFAULT_DIR})"
    )
    args = parser.parse_args(argv)
    if shutil.which("npm") is None:
        print("unitgate: npm is needed to fetch GraphiQL's files", flush=True)
        return 1
    for asset in fetch(args.dir):
        print(f"{asset.local}  {asset.integrity}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
