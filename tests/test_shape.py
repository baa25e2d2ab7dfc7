"""The code's shape, held by tests: imports run one way between layers, every failure has its
GraphQL type and audit word, and docs/layout.md lists every module with its job."""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from unitgate.schema.errors import ERRORS
from unitgate.schema.root import schema
from unitgate.services import errors
from unitgate.services.policy.audit import OUTCOMES, outcome_of

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "src" / "unitgate"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


MODULES = {module_name(path): imports(path) for path in sorted(PACKAGE.rglob("*.py"))}

# The packages, bottom up, and which others each may import (every import counts: lazy ones
# inside functions and those only for type checking too). The README's layout says the same.
PACKAGES: dict[str, set[str]] = {
    "services": set(),  # systemd adapters, live feeds, policy, the fleet's wire: no GraphQL, no config file
    "config": {"services"},  # the settings model and the edge values it validates
    "compose": {"config", "services"},  # a ServiceControl from the settings
    "sandbox": {"services"},  # the private systemd of the tests and the demo
    "schema": {"services", "resolvers"},  # the GraphQL layer: its types...
    "resolvers": {"services", "schema"},  # ...and its thin resolvers
    "view": {"config", "services", "schema", "resolvers"},  # strawberry's view and its ASGI concerns
    "server": {"config", "services", "schema", "view", "compose"},  # the app and the process around it
    "deploy": {"config", "services", "view", "server"},  # setup, doctor, privilege, the fleet's hosts
    "cli": {"config", "services", "schema", "view", "server", "deploy", "sandbox", "compose", "__version__"},
    "__main__": {"cli"},
}


def package_of(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def test_packages_import_only_those_below_them() -> None:
    crossing = sorted(
        f"{module} imports {name}"
        for module, names in MODULES.items()
        if module != "unitgate"
        for name in names
        if name.startswith("unitgate.")
        and package_of(name) != package_of(module)
        and package_of(name) not in PACKAGES[package_of(module)]
    )
    assert crossing == []


def test_no_module_imports_itself_around_a_circle() -> None:
    """No cycle of imports between modules, whether the imports run, are lazy or only typed."""
    # A module reaching a sibling through its own package (`from unitgate.cli import fleet` in
    # cli/main.py) depends on the sibling, not on the package's __init__.
    graph = {
        m: {n for n in names if n in MODULES and n != m and not m.startswith(n + ".")}
        for m, names in MODULES.items()
    }
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str]:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return []
        for imported in sorted(graph[module]):
            circle = visit(imported, [*path, module])
            if circle:
                return circle
        done.add(module)
        return []

    circles = [circle for module in sorted(graph) if (circle := visit(module, []))]
    assert circles == []


def test_few_modules_sit_loose_at_the_top() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert len(loose) <= 6, loose
    assert set(PACKAGES) >= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}


# (modules under this prefix, may not import any of these prefixes, why)
RULES = [
    (
        "unitgate.services",
        (
            "strawberry",
            "graphql",
            "starlette",
            "uvicorn",
        ),
        "nothing below the GraphQL layer knows GraphQL or HTTP",
    ),
    (
        "unitgate.services.systemd",
        ("unitgate.services.live", "unitgate.services.policy"),
        "the systemd adapters hold no policy and no live plumbing",
    ),
    (
        "unitgate.services.live",
        ("unitgate.services.policy",),
        "live feeds sit below policy",
    ),
    (
        "unitgate.schema",
        (
            "subprocess",
            "asyncio.subprocess",
            "unitgate.services.systemd.runner",
        ),
        "the GraphQL layer runs no process",
    ),
    (
        "unitgate.resolvers",
        (
            "subprocess",
            "asyncio.subprocess",
            "unitgate.services.systemd.runner",
        ),
        "resolvers call the services facade; they run no process",
    ),
    (
        "unitgate.view",
        (
            "subprocess",
            "asyncio.subprocess",
            "unitgate.services.systemd",
            "unitgate.services.live",
        ),
        "the view reaches systemd only through the facade",
    ),
]


@pytest.mark.parametrize(("layer", "forbidden", "why"), RULES, ids=[rule[0] for rule in RULES])
def test_imports_run_one_way(layer: str, forbidden: tuple[str, ...], why: str) -> None:
    offending = sorted(
        f"{module} imports {name}"
        for module, names in MODULES.items()
        if module == layer or module.startswith(layer + ".")
        for name in names
        if any(name == prefix or name.startswith(prefix + ".") for prefix in forbidden)
    )
    assert offending == [], why


def test_only_the_runner_starts_processes() -> None:
    """Below the GraphQL layer, one module may start a process: the runner."""
    services = sorted(PACKAGE.joinpath("services").rglob("*.py"))
    importing = [module_name(p) for p in services if MODULES[module_name(p)] & {"subprocess", "os.system"}]
    spawning = [module_name(p) for p in services if "create_subprocess_exec" in p.read_text(encoding="utf-8")]
    assert importing == []
    assert spawning == ["unitgate.services.systemd.runner"]


def test_no_module_is_longer_than_one_sitting() -> None:
    long = {module_name(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 300}
    assert long == {}


def concrete_errors() -> list[type[errors.UnitgateError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.UnitgateError)
        and cls is not errors.UnitgateError
        and not cls.__subclasses__()
    ]


@pytest.mark.parametrize("error", concrete_errors(), ids=lambda cls: cls.__name__)
def test_every_failure_has_its_graphql_type_and_audit_word(error: type[errors.UnitgateError]) -> None:
    assert error in ERRORS
    assert schema.get_type_by_name(ERRORS[error].__strawberry_definition__.name) is not None  # type: ignore[attr-defined]
    assert any(cls in OUTCOMES for cls in error.__mro__), f"{error.__name__} has no audit outcome"


def test_audit_words_follow_the_class_tree() -> None:
    assert outcome_of(errors.RestartFailed("nginx", 1, "no")) == "failed"
    assert outcome_of(errors.ReloadFailed("nginx", 1, "no")) == "failed"
    assert outcome_of(RuntimeError()) == "error"


def test_the_api_doc_names_every_error_type() -> None:
    readme = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    table = set(re.findall(r"^\| `(\w+)", readme, re.M))
    graphql_names = {cls.__strawberry_definition__.name for cls in ERRORS.values()}  # type: ignore[attr-defined]
    assert graphql_names <= table


def test_the_layout_doc_lists_every_module() -> None:
    layout = (ROOT / "docs" / "layout.md").read_text(encoding="utf-8")
    # Listed below its package's folder: `cli.py`, `view/`'s `auth.py`, `services/`'s `systemd/runner.py`.
    listed = [path.relative_to(PACKAGE).parts for path in sorted(PACKAGE.rglob("*.py"))]
    missing = [
        "/".join(parts)
        for parts in listed
        if parts[-1] != "__init__.py" and f"`{'/'.join(parts[1:] or parts)}`" not in layout
    ]
    assert missing == []


def test_the_agents_process_imports_no_graphql_layer_nor_pydantic() -> None:
    """What `unitgate agent` loads, as its process does: the services layer and the NATS client; no
    strawberry, graphql, Starlette or uvicorn, and no pydantic (its config is read in a child:
    cli/agent.py). It is what keeps the agent small on the host."""
    probe = (
        "import sys; from unitgate import cli, compose; from unitgate.cli import agent, fleet; "
        "from unitgate.services.fleet import agent, tls; from unitgate.config import errors; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'strawberry', 'graphql', 'starlette', "
        "'uvicorn', 'prometheus_client', 'cryptography', 'pydantic', 'pydantic_core'}))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
