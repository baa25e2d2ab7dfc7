"""Who may do which action to which service: enabled actions, tokens scoped to services and
actions, every cell of the matrix over HTTP and both websocket protocols."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.typing import Subprotocol

from tests.helpers import RunningServer
from tests.units import CRASHY, HEALTHY
from unitgate.config.settings import ConfigError, load_settings
from unitgate.deploy.privilege import render_polkit_rule, render_sudoers
from unitgate.sandbox.manager import UserManagerSandbox
from unitgate.services.policy.tokens import new_token, token_sha256
from unitgate.services.systemd.allowlist import DEFAULT_ALLOWLIST, Allowlist
from unitgate.services.systemd.units import UnitVerb

pytestmark = pytest.mark.timeout(120)

ENABLED = ["restart", "reload", "stop"]  # start is not offered here
TOKENS = {name: new_token() for name in ("ops", "php-team", "status-page", "nginx-viewer")}
SCOPES: dict[str, dict[str, Any]] = {
    "ops": {"role": "operator"},
    "php-team": {"role": "operator", "services": [HEALTHY], "actions": ["reload"]},
    "status-page": {"role": "viewer"},
    "nginx-viewer": {"role": "viewer", "services": [HEALTHY]},
}
NOT_ALLOWLISTED = "../etc/passwd"


def expected(token: str, action: str, target: str) -> str:
    """What the matrix must answer, from the rules alone."""
    scope = SCOPES[token]
    if action not in ENABLED:
        return "ActionNotEnabled"
    if target == NOT_ALLOWLISTED or target not in scope.get("services", [target]):
        return "ServiceNotAllowed"
    if scope["role"] == "viewer" or action not in scope.get("actions", ENABLED):
        return "Forbidden"
    if action == "reload" and target == CRASHY:
        return "ReloadNotSupported"  # the unit says CanReload=no: a fact of the unit, not of scope
    return f"{action.capitalize()}Succeeded"


MUTATION = """mutation($name: String!) {{ {action}Service(name: $name) {{
  __typename
  ... on Error {{ message }}
  ... on Forbidden {{ role action }}
  ... on ActionNotEnabled {{ action }}
}} }}"""


@pytest.fixture(scope="module")
def delegation_server(sandbox: UserManagerSandbox) -> Iterator[RunningServer]:
    from tests.helpers import sandbox_settings, serve
    from unitgate.server.app import build_control, create_app

    tokens = [{"name": n, "sha256": token_sha256(t), **SCOPES[n]} for n, t in TOKENS.items()]
    settings = sandbox_settings(
        tokens=tokens, actions=ENABLED, journal_directory=str(sandbox.journal_directory)
    )
    control = build_control(settings, sandbox.env)
    with serve(create_app(settings, control), control) as server:
        yield server
    sandbox.systemctl("start", f"{HEALTHY}.service", f"{CRASHY}.service")  # the matrix stops them


async def over_http(server: RunningServer, token: str, query: str, variables: dict[str, Any]) -> Any:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            server.url,
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
    return response.json()["data"]


async def over_websocket(
    protocol: str, server: RunningServer, token: str, query: str, variables: dict[str, Any]
) -> Any:
    async with websockets.connect(server.ws_url, subprotocols=[Subprotocol(protocol)]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        start = "subscribe" if protocol == "graphql-transport-ws" else "start"
        await ws.send(
            json.dumps({"id": "1", "type": start, "payload": {"query": query, "variables": variables}})
        )
        while True:
            message = json.loads(await ws.recv())
            if message["type"] in ("next", "data"):
                return message["payload"]["data"]
            assert message["type"] == "ka", message


TRANSPORTS: dict[str, Callable[..., Any]] = {
    "http": over_http,
    "graphql-transport-ws": lambda *a: over_websocket("graphql-transport-ws", *a),
    "graphql-ws": lambda *a: over_websocket("graphql-ws", *a),
}


@pytest.mark.parametrize("transport", list(TRANSPORTS))
@pytest.mark.parametrize("token", list(TOKENS))
async def test_every_cell_of_the_matrix(delegation_server: RunningServer, token: str, transport: str) -> None:
    runner = delegation_server.control.systemctl._runner
    for action in ("restart", "reload", "start", "stop"):
        for target in (HEALTHY, CRASHY, NOT_ALLOWLISTED):
            want = expected(token, action, target)
            before = runner.spawned
            data = await TRANSPORTS[transport](
                delegation_server, TOKENS[token], MUTATION.format(action=action), {"name": target}
            )
            result = data[f"{action}Service"]
            assert result["__typename"] == want, (token, action, target, result)
            if want in ("ActionNotEnabled", "ServiceNotAllowed", "Forbidden"):
                assert runner.spawned == before, (token, action, target)  # nothing ran at all
            if want == "Forbidden":
                assert result["action"] == action
                assert result["role"] == SCOPES[token]["role"]
            if want == "ActionNotEnabled":
                assert result["action"] == action
    if token == "ops":
        # Leave the units as the session found them: the matrix ends on a stop.
        for unit in (HEALTHY, CRASHY):
            await over_http(
                delegation_server, TOKENS["ops"], MUTATION.format(action="restart"), {"name": unit}
            )


async def test_stopping_an_inactive_service_succeeds_with_its_status(
    delegation_server: RunningServer,
) -> None:
    query = "mutation($n: String!) { stopService(name: $n) { __typename ... on StopSucceeded { service { activeState } } } }"
    first = await over_http(delegation_server, TOKENS["ops"], query, {"n": HEALTHY})
    again = await over_http(delegation_server, TOKENS["ops"], query, {"n": HEALTHY})
    restart = MUTATION.format(action="restart")
    await over_http(delegation_server, TOKENS["ops"], restart, {"name": HEALTHY})
    assert (
        first
        == again
        == {"stopService": {"__typename": "StopSucceeded", "service": {"activeState": "inactive"}}}
    )


@pytest.mark.parametrize(
    ("token", "services", "actions"),
    [
        ("ops", None, ["reload", "restart", "stop"]),
        ("php-team", [HEALTHY], ["reload"]),
        ("status-page", None, []),
        ("nginx-viewer", [HEALTHY], []),
    ],
)
async def test_me_says_what_the_token_may_do(
    delegation_server: RunningServer, token: str, services: list[str] | None, actions: list[str]
) -> None:
    data = await over_http(delegation_server, TOKENS[token], "{ me { name role services actions } }", {})
    assert data["me"] == {
        "name": token,
        "role": SCOPES[token]["role"],
        "services": services or sorted(DEFAULT_ALLOWLIST),
        "actions": actions,
    }


async def test_a_scoped_token_sees_only_its_services(delegation_server: RunningServer) -> None:
    listed = await over_http(
        delegation_server,
        TOKENS["php-team"],
        "{ services { ... on ServiceList { total services { name } } } }",
        {},
    )
    assert listed["services"] == {"total": 1, "services": [{"name": HEALTHY}]}
    other = await over_http(
        delegation_server,
        TOKENS["php-team"],
        "query($n: String!) { service(name: $n) { __typename } serviceLogs(name: $n) { __typename } }",
        {"n": CRASHY},
    )
    assert other == {
        "service": {"__typename": "ServiceNotAllowed"},
        "serviceLogs": {"__typename": "ServiceNotAllowed"},
    }
    # The same answer as for a name that is not allowlisted at all: nothing to learn from it.
    unknown = await over_http(
        delegation_server, TOKENS["php-team"], '{ service(name: "mysql-x") { __typename } }', {}
    )
    assert unknown == {"service": {"__typename": "ServiceNotAllowed"}}


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_scoped_subscription_follows_only_its_services(
    delegation_server: RunningServer, protocol: str
) -> None:
    async with websockets.connect(delegation_server.ws_url, subprotocols=[Subprotocol(protocol)]) as ws:
        await ws.send(
            json.dumps(
                {"type": "connection_init", "payload": {"Authorization": f"Bearer {TOKENS['nginx-viewer']}"}}
            )
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        start = "subscribe" if protocol == "graphql-transport-ws" else "start"
        query = "subscription { serviceStatusChanged { ... on ServiceStatus { name } } }"
        await ws.send(json.dumps({"id": "1", "type": start, "payload": {"query": query}}))
        first = json.loads(await ws.recv())
        while first["type"] == "ka":
            first = json.loads(await ws.recv())
        assert first["payload"]["data"]["serviceStatusChanged"] == {"name": HEALTHY}
        named = 'subscription { serviceStatusChanged(names: ["postfix"]) { __typename } }'
        await ws.send(json.dumps({"id": "2", "type": start, "payload": {"query": named}}))
        refused = json.loads(await ws.recv())
        while refused["type"] == "ka" or refused.get("id") != "2":
            refused = json.loads(await ws.recv())
        assert refused["payload"]["data"]["serviceStatusChanged"]["__typename"] == "ServiceNotAllowed"


def test_audit_names_token_action_service_and_outcome(
    delegation_server: RunningServer, capfd: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    asyncio.run(
        over_http(delegation_server, TOKENS["php-team"], MUTATION.format(action="restart"), {"name": HEALTHY})
    )
    asyncio.run(
        over_http(delegation_server, TOKENS["php-team"], MUTATION.format(action="start"), {"name": HEALTHY})
    )
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    assert {
        "token": "php-team",
        "action": "restart",
        "service": HEALTHY,
        "outcome": "forbidden",
    }.items() <= lines[-2].items()
    assert {
        "token": "php-team",
        "action": "start",
        "service": HEALTHY,
        "outcome": "not_enabled",
    }.items() <= lines[-1].items()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('services = ["nginx", "caddy"]\n', "token 'x': service 'caddy' is not in the allowlist"),
        ('actions = ["start"]\n', "token 'x': action 'start' is not enabled"),
        ('actions = ["explode"]\n', "Input should be 'restart', 'reload', 'start' or 'stop'"),
    ],
)
def test_a_scope_beyond_the_server_stops_startup(
    tmp_config: Callable[[str], Path], extra: str, message: str
) -> None:
    config = tmp_config(f'[[tokens]]\nname = "x"\nrole = "operator"\nsha256 = "{"a" * 64}"\n{extra}')
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(config)


@pytest.mark.parametrize("verbs", [{UnitVerb.RESTART, UnitVerb.RELOAD}, set(UnitVerb)])
def test_privilege_files_allow_exactly_the_enabled_actions(verbs: set[UnitVerb]) -> None:
    allowlist = Allowlist(["nginx", "php8.2-fpm"])
    sudoers = render_sudoers(allowlist, "unitgate", "/usr/bin/systemctl", verbs)
    rule = render_polkit_rule(allowlist, "unitgate", verbs)
    for verb in UnitVerb:
        for unit in ("nginx.service", "php8.2-fpm.service"):
            assert (f"/usr/bin/systemctl {verb} {unit}" in sudoers) == (verb in verbs)
        assert (f'"{verb}"' in rule) == (verb in verbs)


def expected_history(token: str, target: str) -> str:
    """History is for whoever sees the service: viewers too, never outside the token's scope."""
    if target == NOT_ALLOWLISTED or target not in SCOPES[token].get("services", [target]):
        return "ServiceNotAllowed"
    return "ServiceHistory"


@pytest.mark.parametrize("token", list(TOKENS))
async def test_history_follows_the_scope(delegation_server: RunningServer, token: str) -> None:
    query = "query($n: String!) { serviceHistory(name: $n, limit: 5) { __typename } }"
    for target in (HEALTHY, CRASHY, NOT_ALLOWLISTED):
        answer = await over_http(delegation_server, TOKENS[token], query, {"n": target})
        assert answer["serviceHistory"]["__typename"] == expected_history(token, target), (token, target)
