"""Every file under a corpus folder, through symbolic links, each real folder once.

``Path.rglob`` (Python < 3.13) does not descend into symlinked folders, yet assembling a
corpus from several disks with links is common: a RAVDESS root whose actor folders are links
would look empty. Links are followed; a link back up the tree (a cycle) is entered once.
"""

from __future__ import annotations

import os
from pathlib import Path


def corpus_files(root: Path) -> list[Path]:
    """The files under ``root`` (links followed), as paths under ``root``, sorted."""
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        info = os.stat(folder)
        if (info.st_dev, info.st_ino) in seen:  # reached again through a link: a cycle
            dirs.clear()
            continue
        seen.add((info.st_dev, info.st_ino))
        found += [Path(folder) / f for f in files if (Path(folder) / f).is_file()]
    return sorted(found)
