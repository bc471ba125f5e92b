"""Plain-urllib downloads, used only when a caller passes download=True (no network in this workplace)."""
from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence


class DownloadError(OSError):
    pass


def file_md5(path: str | os.PathLike) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(urls: Sequence[str], dest: Path, md5: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch the first URL that works into `dest` (atomically); check `md5` when given."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    failures = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
                shutil.copyfileobj(response, out)
        except (urllib.error.URLError, OSError, ValueError) as err:
            failures.append(f"{url}: {err}")
            partial.unlink(missing_ok=True)
            continue
        if md5 is not None and file_md5(partial) != md5:
            failures.append(f"{url}: md5 mismatch (expected {md5})")
            partial.unlink(missing_ok=True)
            continue
        os.replace(partial, dest)
        return dest
    raise DownloadError(f"could not download {dest.name}: " + "; ".join(failures))
