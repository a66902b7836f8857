"""docs/reload.md's `provcfg watch` sample is what provcfg prints for the edits it describes."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

from tests.support_manifest import clean_env
from tests.support_reload import os_replace

DOC = Path(__file__).resolve().parent.parent / "docs" / "reload.md"


def _sample(name: str) -> str:
    match = re.search(rf"<!-- watch-sample: {name} -->\n```\w*\n(.*?)```", DOC.read_text(), re.S)
    assert match, f"docs/reload.md lost its watch-sample {name} block"
    return match.group(1)


def _edits(manifest: str) -> list[str]:
    """The three saves the doc describes, applied to its manifest."""
    second = manifest.replace("max_tokens: 1024", "max_tokens: 2048")
    third = manifest.replace("max_tokens: 1024", "max_tokens: lots")
    fourth = manifest.replace("max_tokens: 1024", "max_tokens: 4096")
    fourth = fourth[: fourth.index("  local:\n")]
    assert len({manifest, second, third, fourth}) == 4
    return [second, third, fourth]


def _ms(line: str) -> str:
    return re.sub(r" in \d+ ms:", " in N ms:", line)


async def test_watch_prints_the_documented_lines(tmp_path: Path) -> None:
    """Run `provcfg watch`, save as the doc says, compare the lines (milliseconds aside)."""
    manifest = _sample("manifest")
    expected = _sample("output").splitlines()
    path = tmp_path / "providers.yaml"
    path.write_text(manifest)
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("provcfg")),
        "watch",
        cwd=tmp_path,
        env=clean_env(HOME=str(tmp_path)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    seen: list[str] = []

    async def read_until(count: int) -> None:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            while len(seen) < count:
                line = await process.stdout.readline()
                assert line, f"watch ended early; printed {seen!r}"
                seen.append(line.decode().rstrip("\n"))

    try:
        await read_until(1)
        for text, lines_after in zip(_edits(manifest), (2, 4, 5), strict=True):
            os_replace(path, text)
            await read_until(lines_after)
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            _rest, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    assert [_ms(line) for line in seen] == [_ms(line) for line in expected]
    assert err == b""
