"""Hot reload of a manifest reached through symlinks: other folders, subfolders, re-pointed
links and a ConfigMap volume met through a link; every update heard, twice in a row."""

from __future__ import annotations

import os
from pathlib import Path

from provcfg._reload import LiveRuntime, watch
from tests.support_reload import (
    api_manifest,
    configmap_update,
    configmap_write,
    os_replace,
    settled,
    write_in_place,
)


def _tokens(live: LiveRuntime) -> int:
    return int(live.runtime.manifest.providers["api"].max_tokens)


def _manifest(tokens: int) -> str:
    return api_manifest({"api": tokens, "keep": 1})


def _repoint(link: Path, target: Path) -> None:
    """``ln -sfn target link`` done atomically: a new link renamed over the old one."""
    tmp = link.with_name(f".{link.name}.newlink")
    os.symlink(target, tmp)
    os.replace(tmp, link)


async def test_symlink_to_a_file_in_another_folder_replaced_there(tmp_path: Path) -> None:
    """The link's target is atomically replaced in its own folder: heard, twice."""
    (tmp_path / "app").mkdir()
    (tmp_path / "etc").mkdir()
    real = tmp_path / "etc" / "providers.yaml"
    write_in_place(real, _manifest(1))
    link = tmp_path / "app" / "providers.yaml"
    os.symlink(real, link)
    async with watch(link, environ={}) as live:
        await settled(live)
        assert str(tmp_path / "etc") in live.watched_folders
        os_replace(real, _manifest(2))
        await live.wait_for_generation(2)
        assert _tokens(live) == 2
        os_replace(real, _manifest(3))
        await live.wait_for_generation(3)
        assert _tokens(live) == 3


async def test_symlink_into_a_subfolder(tmp_path: Path) -> None:
    """``providers.yaml -> conf/providers.yaml``: the subfolder is watched, not skipped."""
    (tmp_path / "conf").mkdir()
    real = tmp_path / "conf" / "providers.yaml"
    write_in_place(real, _manifest(1))
    link = tmp_path / "providers.yaml"
    os.symlink("conf/providers.yaml", link)
    async with watch(link, environ={}) as live:
        await settled(live)
        os_replace(real, _manifest(2))
        await live.wait_for_generation(2)
        assert _tokens(live) == 2


async def test_repointed_symlink_is_followed(tmp_path: Path) -> None:
    """After the link is re-pointed to a third folder, edits there are heard."""
    for name in ("app", "v1", "v2"):
        (tmp_path / name).mkdir()
    write_in_place(tmp_path / "v1" / "providers.yaml", _manifest(1))
    write_in_place(tmp_path / "v2" / "providers.yaml", _manifest(2))
    link = tmp_path / "app" / "providers.yaml"
    os.symlink(tmp_path / "v1" / "providers.yaml", link)
    async with watch(link, environ={}) as live:
        await settled(live)
        _repoint(link, tmp_path / "v2" / "providers.yaml")
        await live.wait_for_generation(2)
        assert _tokens(live) == 2
        os_replace(tmp_path / "v2" / "providers.yaml", _manifest(3))
        await live.wait_for_generation(3)
        assert _tokens(live) == 3
        assert str(tmp_path / "v2") in live.watched_folders


async def test_symlink_to_a_configmap_volume_elsewhere(tmp_path: Path) -> None:
    """``app/providers.yaml -> /etc/config/providers.yaml`` (a ConfigMap volume): every
    kubelet update (a ``..data`` swap there) is heard, not only the first."""
    (tmp_path / "app").mkdir()
    volume = tmp_path / "config"
    volume.mkdir()
    configmap_write(volume, "providers.yaml", _manifest(1), "2026_01_01.1")
    link = tmp_path / "app" / "providers.yaml"
    os.symlink(volume / "providers.yaml", link)
    async with watch(link, environ={}) as live:
        await settled(live)
        for generation, stamp in ((2, "2026_01_01.2"), (3, "2026_01_01.3"), (4, "2026_01_01.4")):
            configmap_update(volume, "providers.yaml", _manifest(generation), stamp)
            await live.wait_for_generation(generation)
            assert _tokens(live) == generation
