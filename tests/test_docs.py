"""Every Python example in the README and the docs runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
# A line `--8<-- "path"` includes a file of the repository (pymdownx.snippets, base_path: the
# repository's root): the page shows the file, so the test runs it.
SNIPPET = re.compile(r'^--8<-- "([^"\n]+)"[ \t]*$', re.M)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def expanded(code: str, where: str) -> tuple[str, Path | None]:
    """
    The block's code with its included files in place of their ``--8<--`` lines, and the file
    when the block is nothing but one include (run as itself: ``__file__`` and the program's
    name, which names its default store, are then what a user running it would get).
    """
    def include(match: re.Match[str]) -> str:
        path = ROOT / match.group(1)
        if not path.is_file():
            raise AssertionError(f"{where}: --8<-- includes {match.group(1)}, which is not a file")
        return path.read_text()

    code_only = SNIPPET.sub("", code)
    if "--8<--" in code_only:  # line ranges, sections, block includes: not handled here
        raise AssertionError(f"{where}: only whole-file includes on a line of their own are supported")
    whole = SNIPPET.fullmatch(code.strip())
    return SNIPPET.sub(include, code), (ROOT / whole.group(1) if whole else None)


EXAMPLES = [
    pytest.param(*expanded(code, f"{page.name}-{n}"), id=f"{page.name}-{n}")
    for page in PAGES
    for n, code in enumerate(BLOCK.findall(page.read_text()), 1)
]


@pytest.mark.parametrize(("code", "script"), EXAMPLES)
def test_docs_example_runs(code, script, tmp_path):
    command = [sys.executable, str(script)] if script else [sys.executable, "-c", code]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_an_include_is_expanded_and_a_missing_file_is_an_error():
    code, script = expanded('print(1)\n--8<-- "examples/tutorial/01_first.py"\n', "x")
    assert "class Sales(Flow):" in code and script is None
    first = ROOT / "examples/tutorial/01_first.py"
    code, script = expanded('--8<-- "examples/tutorial/01_first.py"\n', "x")
    assert code.strip() == first.read_text().strip() and script == first
    with pytest.raises(AssertionError, match="not a file"):
        expanded('--8<-- "examples/nothing.py"\n', "x")
    with pytest.raises(AssertionError, match="only whole-file includes"):
        expanded('--8<--\nexamples/tutorial/01_first.py\n--8<--\n', "x")
