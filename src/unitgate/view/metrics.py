"""GET /metrics: the services and unitgate itself in the Prometheus text format, written by the
official client library; the facts are read where they are kept, at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from unitgate.services.errors import UnitgateError
from unitgate.services.facade import Facade
from unitgate.services.policy.access import Actor
from unitgate.services.policy.control import WATCHER_MODES, UnitStatus
from unitgate.services.policy.tokens import Authenticator
from unitgate.view.auth import authenticate, client_address
from unitgate.view.auth_gate import unauthorized

# node_exporter's systemd collector reports these states, one series each.
STATES = ("active", "reloading", "inactive", "failed", "activating", "deactivating")


class _Scrape(Collector):
    """The values of one scrape: set just before the registry is written, read while it is."""

    def __init__(self, instance_name: str | None) -> None:
        self.instance = instance_name
        self.statuses: list[UnitStatus] = []
        self.gauges: dict[str, tuple[str, float]] = {}
        self.counters: dict[str, tuple[str, float]] = {}
        self.watcher_mode = "idle"
        self.actions: dict[tuple[str, str], int] = {}
        self.internals = True  # unitgate's own series, which count every service's activity

    def collect(self) -> Iterator[Metric]:
        # A hub's statuses each name their host; one server's take its instance_name, if set.
        labelled = bool(self.instance) or any(status.instance for status in self.statuses)
        label_names = ["service", *(["instance_name"] if labelled else [])]
        up = GaugeMetricFamily(
            "unitgate_service_up", "1 when the service is active (or reloading).", labels=label_names
        )
        state = GaugeMetricFamily(
            "unitgate_service_state",
            "1 for the service's current ActiveState.",
            labels=[*label_names, "state"],
        )
        restarts = CounterMetricFamily(
            "unitgate_service_restarts", "Automatic restarts by systemd (NRestarts).", labels=label_names
        )
        memory = GaugeMetricFamily(
            "unitgate_service_memory_bytes", "MemoryCurrent, where accounted.", labels=label_names
        )
        cpu = CounterMetricFamily(
            "unitgate_service_cpu_seconds",
            "CPU time used (CPUUsageNSec), where accounted.",
            labels=label_names,
        )
        started = GaugeMetricFamily(
            "unitgate_service_start_time_seconds",
            "When the service last became active (Unix time).",
            labels=label_names,
        )
        for status in self.statuses:
            values = [status.name, *([status.instance or self.instance or ""] if labelled else [])]
            up.add_metric(values, 1.0 if status.active else 0.0)
            for name in STATES:
                state.add_metric([*values, name], 1.0 if status.active_state == name else 0.0)
            if status.restart_count is not None:
                restarts.add_metric(values, float(status.restart_count))
            if status.memory_bytes is not None:
                memory.add_metric(values, float(status.memory_bytes))
            if status.cpu_nsec is not None:
                cpu.add_metric(values, status.cpu_nsec / 1e9)
            if status.active_since is not None:
                started.add_metric(values, status.active_since.timestamp())
        yield from (up, state, restarts, memory, cpu, started)
        if not self.internals:
            return
        mode = GaugeMetricFamily(
            "unitgate_watcher_mode", "1 for how the watcher learns of changes now.", labels=["mode"]
        )
        for name in WATCHER_MODES:
            mode.add_metric([name], 1.0 if self.watcher_mode == name else 0.0)
        yield mode
        for name, (help_text, value) in self.gauges.items():
            yield GaugeMetricFamily(name, help_text, value=value)
        for name, (help_text, value) in self.counters.items():
            yield CounterMetricFamily(name, help_text, value=value)
        actions = CounterMetricFamily(
            "unitgate_actions",
            "Action attempts by verb and outcome (refused ones included).",
            labels=["verb", "outcome"],
        )
        for (verb, outcome), count in sorted(self.actions.items()):
            actions.add_metric([verb, outcome], float(count))
        yield actions


class Metrics:
    """unitgate's own instruments, and the endpoint that writes them with the services'."""

    def __init__(self, instance_name: str | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "unitgate_requests",
            "GraphQL operations by type and outcome.",
            ["operation_type", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "unitgate_request_duration_seconds",
            "GraphQL operation durations (for a subscription, its whole life).",
            ["operation_type"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self._scrape = _Scrape(instance_name)
        self.registry.register(self._scrape)
        # For a token scoped to some services: theirs only, none of unitgate's own series.
        self._services_only = CollectorRegistry(auto_describe=False)
        self._services_only.register(self._scrape)

    def operation_finished(self, operation_type: str, ok: bool, seconds: float) -> None:
        self.requests.labels(operation_type, "ok" if ok else "error").inc()
        self.duration.labels(operation_type).observe(seconds)

    def exposition(
        self, control: Facade, statuses: list[UnitStatus], websockets: int, internals: bool = True
    ) -> bytes:
        """The services' series, and with `internals` unitgate's own: the operations, processes,
        subscriptions and actions of every service together, so a token scoped to some services
        gets none of them (they would tell it of the others' activity)."""
        scrape = self._scrape
        scrape.statuses = statuses
        scrape.internals = internals
        own = control.internals()
        scrape.watcher_mode = own.watcher_mode
        scrape.gauges = {
            "unitgate_websockets_open": ("Websockets open now.", float(websockets)),
            "unitgate_subscriptions_active": ("Subscriptions streaming now.", float(own.streams)),
        }
        scrape.counters = {
            "unitgate_processes_spawned": (
                "systemctl and journalctl processes started.",
                float(own.processes_spawned),
            ),
            "unitgate_process_seconds": (
                "Time spent waiting for systemctl and journalctl.",
                own.process_seconds,
            ),
        }
        scrape.actions = dict(own.action_outcomes)
        return generate_latest(self.registry if internals else self._services_only)


def metrics_endpoint(
    metrics: Metrics, control: Facade, authenticator: Authenticator, public: bool, websockets: Any
) -> Any:
    """The Starlette endpoint. Service state is not public by default: any token (Prometheus sends
    it with `authorization: credentials`), or `metrics_public = true` for a trusted scrape network."""

    async def endpoint(request: Request) -> Response:
        actor: Actor | None = authenticate(
            authenticator, request.headers.get("authorization"), client_address(request)
        )
        if actor is None:
            if not public:
                return unauthorized()
            actor = authenticator.anonymous(client_address(request))
        try:
            statuses = await control.list_installed(actor)
        except UnitgateError as error:
            return JSONResponse({"errors": [{"message": str(error)}]}, status_code=503)
        body = metrics.exposition(control, statuses, websockets.open, internals=actor.services is None)
        # The classic text format, which every Prometheus 2 parses (Debian 12 ships 2.42).
        return Response(body, headers={"content-type": CONTENT_TYPE_PLAIN_0_0_4})

    return endpoint
