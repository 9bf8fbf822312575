"""Shared by the benchmark scripts: find the book's notebooks and execute one, timed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def toc_notebooks() -> list[Path]:
    """Every notebook listed in _toc.yml, in reading order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    found: list[Path] = []

    def walk(entries):
        for entry in entries or []:
            path = ROOT / f"{entry.get('file', '')}.ipynb"
            if "file" in entry and path.exists():
                found.append(path)
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    return found


def execute(path: Path, env: dict[str, str] | None = None, timeout: int = 600) -> float:
    """Run a notebook top to bottom in a fresh kernel (cwd = its folder); wall seconds."""
    nb = nbformat.read(path, as_version=4)
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        start = time.perf_counter()
        client.execute()
        return time.perf_counter() - start
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
