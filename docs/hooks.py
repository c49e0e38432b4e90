"""
MkDocs hooks: the command line reference, generated from the typer app when the site is built.

A page that holds the line ``<!-- cli-reference: eventor.cli:app eventor -->`` gets, in its
place, a section per command of that app: its help, its usage line, and a table of its
arguments and options, each as its ``--help`` prints it. The reference therefore follows
the code; the page around it keeps the prose that explains.
"""

from __future__ import annotations

import html
import importlib
import re
from collections.abc import Iterator
from typing import Any

from mkdocs.exceptions import PluginError

MARKER = re.compile(r"^<!-- cli-reference: (?P<target>[\w.]+:\w+) (?P<prog>[\w-]+) -->$", re.M)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Replace each CLI reference marker of a page with the reference it names."""
    return MARKER.sub(lambda m: cli_reference(m["target"], m["prog"]), markdown)


def cli_reference(target: str, prog: str) -> str:
    """The Markdown reference of the typer app at ``module:attribute``, run as ``prog``."""
    import typer
    import typer.main

    module, _, attribute = target.partition(":")
    try:
        app = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"cli-reference: cannot load {target}: {exc}") from exc
    group = typer.main.get_command(app)
    ctx = typer.Context(group, info_name=prog)
    commands = list(_commands(group, ctx, prog))
    if not commands:
        raise PluginError(f"cli-reference: {target} has no commands")

    out = [f"`{prog} [OPTIONS] COMMAND [ARGS]...`: {_text(group.help or '')}", "",
           "| command | what it does |", "| --- | --- |"]
    out += [f"| [`{path}`](#{_anchor(path)}) | {_text(_first_sentence(command.help or ''))} |"
            for path, command, _ in commands]
    out += ["", f"Options of `{prog}` itself, given before the command:", "", *_params(group, ctx)]
    for path, command, sub in commands:
        usage = command.get_usage(sub).removeprefix("Usage: ")
        out += ["", f"### `{path}` {{#{_anchor(path)}}}", "",
                _text(command.help or ""), "", "```text", usage, "```", "", *_params(command, sub)]
    return "\n".join(out) + "\n"


def _commands(group: Any, ctx: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    """Every visible command under ``group`` with its full path and context, sub-groups' too."""
    import typer

    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        sub = typer.Context(command, info_name=name, parent=ctx)
        yield f"{path} {name}", command, sub
        if hasattr(command, "list_commands"):
            yield from _commands(command, sub, f"{path} {name}")


def _params(command: Any, ctx: Any) -> list[str]:
    rows = [record for param in command.get_params(ctx)
            if not getattr(param, "hidden", False) and (record := param.get_help_record(ctx))]
    if not rows:
        return []
    return ["| argument or option | description |", "| --- | --- |",
            *(f"| `{_code(names)}` | {_text(text)} |" for names, text in rows)]


def _anchor(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def _first_sentence(text: str) -> str:
    line = " ".join(text.split())
    cut = re.search(r"[.;](\s|$)", line)
    return line[: cut.start()] if cut else line


def _text(text: str) -> str:
    """Help text as Markdown prose: nothing in it is markup."""
    escaped = html.escape(" ".join(text.split()), quote=False)
    return re.sub(r"([\\`*_\[\]#|])", r"\\\1", escaped)


def _code(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")
