"""Hot reload from a Kubernetes ConfigMap volume, in a real process.

The kubelet never edits a projected file in place. It writes every key into a new hidden
directory (``..2026_12_02_01_45_00.123456789/``), points a temporary symlink at it, renames
that over ``..data`` (one atomic step) and removes the old directory; each key's file is a
symlink ``config.yaml -> ..data/config.yaml``, made once. Switchback watches the path it was
given, through the symlinks, so the swap is a change of the file it reads. These tests lay out
and update a directory the way the kubelet's atomic writer does and check what Switchback then
serves.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

from tests.integration.conftest import Releases, write_switchback_config
from tests.integration.helpers_rollout import (
    Processes,
    poll,
    processes_fixture,  # noqa: F401 - the processes fixture
    status_of,
)
from tests.integration.test_reload import reload_counts

KEY = "config.yaml"
_generation = itertools.count(1)


class ConfigMapVolume:
    """A directory laid out and updated as the kubelet's atomic writer does."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.current: Path | None = None

    @property
    def path(self) -> Path:
        """The file a container is given: ``<mount>/config.yaml``, a symlink into ``..data``."""
        return self.root / KEY

    def publish(self, text: str, mtime_ns: int | None = None) -> None:
        """Write ``text`` as the ConfigMap's new content; ``mtime_ns``: the new file's mtime."""
        new = self.root / f"..2026_12_02_01_45_{next(_generation):02d}.000000001"
        new.mkdir()
        (new / KEY).write_text(text)
        if mtime_ns is not None:
            os.utime(new / KEY, ns=(mtime_ns, mtime_ns))
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(new.name)
        os.replace(tmp, self.root / "..data")  # the atomic step
        if not self.path.is_symlink():
            self.path.symlink_to(f"..data/{KEY}")
        if self.current is not None:
            shutil.rmtree(self.current)
        self.current = new


def draft(releases: Releases, tmp_path: Path, weights: dict[str, int]) -> str:
    """A config for ``releases`` with ``weights``, state in ``tmp_path/state``."""
    path = write_switchback_config(
        tmp_path / "draft.yaml", releases, {"traffic": {"weights": weights}}
    )
    return path.read_text()


async def test_a_configmap_update_is_applied_without_a_signal(
    releases: Releases, tmp_path: Path, processes: Processes
) -> None:
    volume = ConfigMapVolume(tmp_path / "config")
    volume.publish(draft(releases, tmp_path, {"blue": 100, "green": 0}))
    proc = await processes.start(volume.path)

    volume.publish(draft(releases, tmp_path, {"blue": 70, "green": 30}))
    status = await poll(
        lambda: status_of(proc),
        lambda s: s["weights"] == {"blue": 70.0, "green": 30.0},
        10,
        "the swapped ConfigMap to be applied",
    )
    assert status["source"] == "config"
    assert await reload_counts(proc) == (1, 0)


async def test_a_swap_to_a_file_of_the_same_size_and_mtime_is_seen(
    releases: Releases, tmp_path: Path, processes: Processes
) -> None:
    """Two updates within the clock's resolution, of the same length: only the swap itself
    (a new file behind the same path) tells them apart."""
    volume = ConfigMapVolume(tmp_path / "config")
    old = draft(releases, tmp_path, {"blue": 100, "green": 0})
    volume.publish(old)
    assert volume.current is not None
    mtime = os.stat(volume.current / KEY).st_mtime_ns
    proc = await processes.start(volume.path)

    new = draft(releases, tmp_path, {"blue": 90, "green": 10})
    assert len(new) == len(old)
    volume.publish(new, mtime_ns=mtime)
    await poll(
        lambda: status_of(proc),
        lambda s: s["weights"] == {"blue": 90.0, "green": 10.0},
        10,
        "the swap to be seen",
    )


async def test_a_bad_configmap_is_refused_and_the_next_good_one_applies(
    releases: Releases, tmp_path: Path, processes: Processes
) -> None:
    volume = ConfigMapVolume(tmp_path / "config")
    volume.publish(draft(releases, tmp_path, {"blue": 100, "green": 0}))
    proc = await processes.start(volume.path)

    bad = draft(releases, tmp_path, {"blue": 70, "green": 40})  # sums to 110
    volume.publish(bad)
    await poll(lambda: reload_counts(proc), lambda c: c[1] >= 1, 10, "the refusal")
    assert (await status_of(proc))["weights"] == {"blue": 100.0, "green": 0.0}
    # The log is written off the request path, a moment after the refusal is counted.
    refusal = f"{volume.path}: traffic.weights: {{blue: 70, green: 40}} sum to 110"

    async def log() -> str:
        return proc.log

    await poll(log, lambda text: refusal in text, 10, "the refusal in the log")

    volume.publish(draft(releases, tmp_path, {"blue": 50, "green": 50}))
    await poll(
        lambda: status_of(proc),
        lambda s: s["weights"] == {"blue": 50.0, "green": 50.0},
        10,
        "the next good ConfigMap to be applied",
    )
    assert (await reload_counts(proc))[0] == 1
