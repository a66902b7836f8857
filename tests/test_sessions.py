"""Sessions without a CLI: the anthropic-api kind keeps the history; other kinds refuse.

The anthropic-api session runs against the loopback stub with both transports; the
stub records each request's body, so the test checks that turn 2 carries turn 1.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from provcfg._errors import ProviderError
from provcfg.plugin import BaseProvider, Chunk
from provcfg.stub.server import StubServer
from tests.support_anthropic import TRANSPORTS, make, stub

__all__ = ["stub"]

TURNS = ("My name is Ada.", "What is my name?", "And backwards?")


def _texts(body: Any) -> list[str]:
    out = []
    for message in body["messages"]:
        content = message["content"]
        out.append(content if isinstance(content, str) else json.dumps(content))
    return out


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_anthropic_session_sends_the_history_with_every_turn(
    stub: StubServer, transport: str
) -> None:
    """Each turn's request holds every earlier prompt and answer, in order; a failed turn
    adds nothing and the session goes on."""
    handle = make(stub.base_url, transport)
    try:
        async with handle.provider.session(system="be brief") as session:
            assert session.session_id
            answers = []
            for prompt in TURNS:
                chunks = [c async for c in session.send(prompt)]
                assert chunks[-1].type == "result"
                answers.append("".join(c.text for c in chunks if c.type == "text"))
            bodies = [r.body for r in stub.requests if r.path == "/v1/messages"]
            assert _texts(bodies[0]) == [TURNS[0]]
            assert _texts(bodies[1]) == [TURNS[0], answers[0], TURNS[1]]
            assert _texts(bodies[2]) == [TURNS[0], answers[0], TURNS[1], answers[1], TURNS[2]]
            assert all(b["system"] == "be brief" for b in bodies)
            stub.enqueue_fault("401", path="/v1/messages")
            with pytest.raises(ProviderError):
                [c async for c in session.send("this fails")]
            [c async for c in session.send("still here?")]
            last = [r.body for r in stub.requests if r.path == "/v1/messages"][-1]
            assert "this fails" not in json.dumps(last) and len(last["messages"]) == 7
        with pytest.raises(ProviderError) as closed:
            session.send("after the end")
        assert closed.value.kind == "invalid_request"
    finally:
        await handle.aclose()


async def test_a_kind_without_sessions_refuses_clearly() -> None:
    """BaseProvider's default session() raises an invalid_request ProviderError naming the kind."""
    from pydantic import BaseModel

    from provcfg.testing import make_context

    class Spec(BaseModel):
        kind: str = "echo"

    class Echo(BaseProvider):
        kind = "echo"

        async def stream(self, prompt: str, **kwargs: Any) -> Any:  # type: ignore[override]
            yield Chunk("text", prompt)

    provider = Echo(make_context(Spec(), name="e"))
    with pytest.raises(ProviderError) as caught:
        provider.session()
    assert caught.value.kind == "invalid_request"
    assert "kind echo has no sessions" in caught.value.message
