"""Python bytecodes per request: the anthropic SDK used directly vs provcfg's sdk transport.

Time on these shared machines moves by several per cent from one minute to the next;
the number of bytecodes a request executes does not (``sys.settrace`` opcode events,
counted per function). It misses work done in C (sockets, JSON, pydantic-core), so it
is a proxy for the Python-level overhead provcfg adds, and the place to look first when
a ratio of times moves by a per cent or two.

    .venv/bin/python benchmarks/opcount_stream.py [--model stub-text] [--first]
        [--rev REV] [--top 30]

``--first`` counts only up to the first text chunk (the first-chunk latency's share),
``--model stub-deltas-2000`` a long stream (divide by 2,000 for per chunk). ``--rev``
also counts the anthropic-api provider of an older commit (its
``provcfg/_providers/anthropic_api.py`` loaded beside this one, on the same pool).
Prints the totals and the functions whose counts differ most from the SDK's.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib.util
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KEY = "sk-bench"
counts: collections.Counter[tuple[str, str]] = collections.Counter()
counting = [False]


def _tracer(frame: Any, event: str, arg: Any) -> Any:
    frame.f_trace_opcodes = True
    if event == "opcode" and counting[0]:
        code = frame.f_code
        name = code.co_filename.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        counts[(name, code.co_qualname)] += 1
    return _tracer


def _older_provider_class(rev: str) -> Any:
    """``AnthropicApiProvider`` as of ``rev`` (its module loaded under another name)."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:provcfg/_providers/anthropic_api.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "anthropic_api_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("provcfg._providers._before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.AnthropicApiProvider


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="stub-text")
    parser.add_argument("--first", action="store_true", help="count up to the first chunk")
    parser.add_argument("--rev", help="also count the provider of this older commit")
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()

    import anthropic
    import httpx2

    import provcfg
    from provcfg.stub import StubProcess

    def reader(stream_of: Callable[[], Awaitable[Any]], is_text: Callable[[Any], bool]) -> Any:
        async def read() -> None:
            counting[0] = True
            async for item in await stream_of():
                if args.first and is_text(item):
                    counting[0] = False
            counting[0] = False

        return read

    with StubProcess() as stub, tempfile.TemporaryDirectory() as folder:
        http = httpx2.AsyncClient(timeout=120)
        client = anthropic.AsyncAnthropic(
            api_key=KEY, base_url=stub.base_url, http_client=http, max_retries=0
        )
        manifest = Path(folder) / "providers.yaml"
        manifest.write_text(
            "version: 1\npools:\n  p: {max_connections: 20, max_keepalive_connections: 20}\n"
            f"providers:\n  sdk: {{kind: anthropic-api, base_url: '{stub.base_url}', "
            f"api_key: {KEY}, pool: p, transport: sdk, max_retries: 0, "
            f"model: {args.model}, max_tokens: 1024}}\n"
        )
        rt = provcfg.load(manifest)
        handle = rt.provider("sdk")

        async def sdk_stream() -> Any:
            return await client.messages.create(
                model=args.model,
                max_tokens=1024,
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
            )

        def sdk_text(event: Any) -> bool:
            return bool(event.type == "content_block_delta" and event.delta.type == "text_delta")

        def chunks_of(provider: Any) -> Callable[[], Awaitable[Any]]:
            async def open_stream() -> Any:
                return provider.stream("hi")

            return open_stream

        readers = {
            "sdk": reader(sdk_stream, sdk_text),
            "provcfg": reader(chunks_of(handle), lambda c: c.type == "text"),
        }
        if args.rev:
            older = _older_provider_class(args.rev)(handle.instance().ctx)
            readers[f"provcfg@{args.rev}"] = reader(chunks_of(older), lambda c: c.type == "text")
        results: dict[str, dict[tuple[str, str], float]] = {}
        for name, read in readers.items():
            for _ in range(20):  # warm: connections, caches, specializations
                await read()
            counts.clear()
            sys.settrace(_tracer)
            for _ in range(args.requests):
                await read()
            sys.settrace(None)
            results[name] = {k: c / args.requests for k, c in counts.items()}
        await rt.aclose()
        await http.aclose()

    base = sum(results["sdk"].values())
    scope = "to the first text chunk" if args.first else "per request"
    print(f"model {args.model}, bytecodes {scope} (mean of {args.requests}):")
    for name, table in results.items():
        total = sum(table.values())
        print(f"  {name:24s} {total:11.0f}  {total - base:+9.0f}  ({total / base - 1:+.2%})")
    for name in list(results)[1:]:
        keys = set(results["sdk"]) | set(results[name])
        diff = sorted(
            ((results[name].get(k, 0.0) - results["sdk"].get(k, 0.0), k) for k in keys),
            key=lambda item: -abs(item[0]),
        )
        print(f"\n{name} - sdk, largest differences:")
        for delta, (file, function) in diff[: args.top]:
            print(f"  {delta:+9.0f}  {file}:{function}")


if __name__ == "__main__":
    asyncio.run(main())
