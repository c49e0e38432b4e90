"""The documentation site: every public name has a reference entry, every page is in the nav."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import yaml

import eventor

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DIRECTIVE = re.compile(r"^::: (eventor(?:\.\w+)*)\s*$", re.M)


def _directives() -> dict[str, Path]:
    return {target: page for page in sorted((DOCS / "reference").glob("*.md"))
            for target in DIRECTIVE.findall(page.read_text())}


def _nav_pages(items: object) -> set[str]:
    if isinstance(items, str):
        return {items}
    if isinstance(items, list):
        return set().union(*map(_nav_pages, items)) if items else set()
    if isinstance(items, dict):
        return set().union(*map(_nav_pages, items.values())) if items else set()
    return set()


class _Loader(yaml.SafeLoader):
    """mkdocs.yml's own tags (!relative, !!python/name) read as plain values."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
_Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)


def test_every_public_name_has_a_reference_entry():
    documented = {target.rpartition(".")[2] for target in _directives()}
    missing = sorted(set(eventor.__all__) - documented)
    assert not missing, f"add a '::: eventor.NAME' line to a page of docs/reference/ for: {missing}"


def test_every_reference_entry_names_a_public_name_or_a_module():
    for target, page in _directives().items():
        module, _, name = target.rpartition(".")
        public = module == "eventor" and name in eventor.__all__
        assert public or importlib.util.find_spec(target), \
            f"{page.name}: {target} is neither in eventor.__all__ nor a module"


def test_every_page_is_in_the_nav():
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_Loader)
    nav = _nav_pages(config["nav"])
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert sorted(pages - nav) == [], "pages missing from the nav of mkdocs.yml"


def test_the_cli_reference_covers_every_command():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    assert spec and spec.loader
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    page = (DOCS / "cli.md").read_text()
    assert hooks.MARKER.search(page), "cli.md has no cli-reference marker"
    rendered = hooks.on_page_markdown(page, page=None)
    import typer
    import typer.main

    from eventor.cli import app

    group = typer.main.get_command(app)
    for path, command, ctx in hooks._commands(group, typer.Context(group, info_name="eventor"), "eventor"):
        assert f"### `{path}`" in rendered
        for param in command.get_params(ctx):
            if getattr(param, "hidden", False):
                continue
            for opt in getattr(param, "opts", []):
                if opt.startswith("-"):
                    assert opt in rendered, f"{path} {opt} is not in the CLI reference"
