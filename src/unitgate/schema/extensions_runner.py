"""strawberry's extension runner, with an operation's per-result hooks found once, not at each event.

strawberry looks up every extension's `on_stream_result` and `get_results` anew for each result of
a stream (four lookups through `inspect`, an exit stack, a dict merged per extension): per event
per subscriber, about a quarter of a hub's time fanning 20 hosts' changes out to 1,000 dashboards
(bench/, profiled). The extensions of an operation do not change while it runs, so what they
define is read on its first result and kept; each result still runs every hook they define.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, cast

from strawberry.extensions import SchemaExtension
from strawberry.extensions.context import StreamResultContextManager, WrappedHook
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types import ExecutionContext
from strawberry.types.execution import StreamExecutionResult
from strawberry.utils.await_maybe import await_maybe


class _NoHooks:
    """The context of a result no extension has a hook for."""

    __slots__ = ()

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        return None


_NO_HOOKS = _NoHooks()


class _KnownHooks(StreamResultContextManager):
    """strawberry's context of a streamed result, given the hooks rather than finding them."""

    def __init__(self, hooks: list[WrappedHook], result: StreamExecutionResult) -> None:
        self.hooks = hooks
        self.result = result


class _OneSyncHook:
    """The context of a result with one synchronous hook (MaskErrors' own, in unitgate's schema):
    entered as `with` would, without the exit stack strawberry builds around it per result."""

    __slots__ = ("_context",)

    def __init__(self, hook: WrappedHook, result: StreamExecutionResult) -> None:
        # A stream result's hooks take the result (strawberry's WrappedHook types them bare).
        self._context = cast("AbstractContextManager[None]", hook.hook(result))

    async def __aenter__(self) -> None:
        self._context.__enter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> bool | None:
        return self._context.__exit__(kind, error, trace)


def _defines_results(extension: SchemaExtension) -> bool:
    return type(extension).get_results is not SchemaExtension.get_results


class LeanExtensionsRunner(SchemaExtensionsRunner):
    # Found at the operation's first streamed result (most operations are not streamed).
    _stream_hooks: list[WrappedHook] | None = None
    _with_results: list[SchemaExtension] | None = None

    def on_stream_result(self, result: StreamExecutionResult) -> Any:
        hooks = self._stream_hooks
        if hooks is None:
            hooks = self._stream_hooks = StreamResultContextManager(self.extensions, result).hooks
        if not hooks:
            return _NO_HOOKS
        if len(hooks) == 1 and not hooks[0].is_async:
            return _OneSyncHook(hooks[0], result)
        return _KnownHooks(hooks, result)

    async def get_extensions_results(self, ctx: ExecutionContext) -> dict[str, Any]:
        with_results = self._with_results
        if with_results is None:
            with_results = self._with_results = [e for e in self.extensions if _defines_results(e)]
        data: dict[str, Any] = {}
        for extension in with_results:
            data.update(await await_maybe(extension.get_results()))
        data.update(ctx.extensions_results)
        return data
