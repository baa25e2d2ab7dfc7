"""unitgate as the benchmark runs it: the real app plus a /_bench/stats route for its counters."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from unitgate.config.settings import Settings
from unitgate.server.app import build_control, create_app
from unitgate.server.edge import uvicorn_options


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--runtime-dir", required=True)
    parser.add_argument("--settings", required=True, help="JSON for unitgate's Settings")
    args = parser.parse_args()
    settings = Settings.model_validate(json.loads(args.settings))
    control = build_control(settings, {"XDG_RUNTIME_DIR": args.runtime_dir})
    app = create_app(settings, control)

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "spawned": control.systemctl._runner.spawned,
                "reads": control.watcher.reads,
                "mode": str(control.watcher.mode),
                "watchers": control.watcher.watchers,
                "rss": rss_bytes(),
            }
        )

    app.router.routes.append(Route("/_bench/stats", stats))
    options = uvicorn_options(settings.edge_limits())
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="info", **options)


if __name__ == "__main__":
    main()
