"""schema.graphql is the printed schema: the committed file and the code never drift apart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from unitgate.schema.root import schema

SCHEMA_FILE = Path(__file__).parents[2] / "schema.graphql"


def test_committed_schema_is_the_printed_schema() -> None:
    assert SCHEMA_FILE.read_text() == schema.as_str() + "\n", (
        "schema.graphql drifted: run `unitgate schema > schema.graphql` and review the diff"
    )


def test_unitgate_schema_prints_it() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "unitgate", "schema"], capture_output=True, text=True, check=True
    ).stdout
    assert printed == SCHEMA_FILE.read_text()


def test_public_contract() -> None:
    """The root fields and type names clients depend on."""
    sdl = schema.as_str()
    for line in [
        # Each gained an optional instance argument with the fleet: old documents stay valid.
        "services(instances: [String!] = null): ServicesResult!",
        "service(name: String!, instance: String = null): ServiceResult!",
        "restartService(name: String!, instance: String = null): RestartServiceResult!",
        "serviceStatusChanged(names: [String!] = null, instances: [String!] = null): ServiceStatusEvent!",
        "instances: [Instance!]!",
        "type Instance {",
        "interface Error {",
        "type ServiceList {",
        "type RestartSucceeded {",
        "memoryBytes: ByteCount",
    ]:
        assert line in sdl
    for error in [
        "ServiceNotAllowed",
        "ServiceNotFound",
        "SystemctlTimeout",
        "RestartFailed",
        "SystemdUnavailable",
        "InstanceNotFound",
        "InstanceOffline",
    ]:
        assert f"type {error} implements Error {{" in sdl
