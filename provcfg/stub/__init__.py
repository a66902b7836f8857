"""The loopback stub API server: Anthropic Messages and OpenAI Responses/Chat on 127.0.0.1.

Real clients (the anthropic SDK, Claude Code, codex, opencode) accept it, so tests and
benchmarks run offline. It listens on loopback only and refuses any other address.

In the caller's event loop::

    from provcfg.stub import StubServer, StubConfig

    async with StubServer(port=0, config=StubConfig(deltas=1000, chunk_size=4)) as stub:
        client = anthropic.AsyncAnthropic(base_url=stub.base_url, api_key="stub")
        stub.enqueue_fault("429-retry-after-1")      # the next API request gets a 429
        ...
        stub.requests[-1].model, stub.requests[-1].connection

In a thread of its own (sync code, or to keep it off the client's loop)::

    with StubServer().running_in_thread() as stub:
        ...

In a separate process (benchmarks): ``python -m provcfg.stub --port 0 --port-file F``
(the same as ``provcfg stub``), stopped with SIGTERM; ``with StubProcess(["--deltas",
"10000"]) as child: child.base_url`` does exactly that and reaps the child.

Per request, the model name (``stub-thinking``, ``stub-fault-429-retry-after-1``) or
the headers ``x-stub-scenario`` / ``x-stub-fault`` / ``x-stub-reply`` pick the
scenario, the fault and the reply size; the grammar (every value bounded) is in
:mod:`provcfg.stub.faults` and docs/stub.md. ``stub.set_default_fault("headers-delay-2")``
slows every request of a running stub until ``stub.set_default_fault(None)``. Control
routes (loopback clients only): ``POST``/``GET /_stub/faults``,
``POST``/``GET``/``DELETE /_stub/default-fault``, ``GET /_stub/requests``,
``POST /_stub/reset``.
"""

from __future__ import annotations

from provcfg.stub.command import main
from provcfg.stub.config import StubConfig, StubError
from provcfg.stub.faults import Directives, Fault, parse_directives, tool_words
from provcfg.stub.process import StubProcess
from provcfg.stub.routes import RecordedRequest
from provcfg.stub.server import StubServer

__all__ = [
    "Directives",
    "Fault",
    "RecordedRequest",
    "StubConfig",
    "StubError",
    "StubProcess",
    "StubServer",
    "main",
    "parse_directives",
    "tool_words",
]
