"""Plain help screens, as beets' and llm's read: ``Usage: musicsearch index [OPTIONS] FOLDER``,
then one line per option with a metavar that says what to type (``--workers N``,
``--m3u FILE``), and the help text exactly as written (no Rich markup, so ``'musicsearch[ray]'``
stays as typed).

Typer labels values by their Python type (``<str>``, ``<list[str]>``, ``<bool>``) and wraps a
required argument as ``{folder}``. The root group (``cli/__init__.py``) calls ``plain_help``
on itself once typer has built it: every option without a metavar of its own gets one from
its type, and every argument is shown by its name in capitals, sub-groups included, whoever
wrote the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

from typer.core import TyperArgument, TyperGroup, TyperOption

# what to type after an option that sets no metavar, by the type of its value
_TYPE_METAVARS: dict[Any, str] = {int: "N", float: "NUMBER", Path: "PATH"}


class PlainArgument(TyperArgument):
    """An argument shown by its metavar (the name in capitals): ``FOLDER``, ``[NAMES]...``."""

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        name = self.metavar or (self.name or "").upper()
        name = name if self.required else f"[{name}]"
        return [f"{name}..." if self.nargs != 1 else name]

    def get_help_record(self, ctx: Any) -> tuple[str, str] | None:
        if self.hidden:
            return None
        return self.metavar or (self.name or "").upper(), self.help or ""


def option_metavar(option: TyperOption) -> str:
    """What to type after an option that sets no metavar: its choices, ``N``, ``NUMBER``,
    ``PATH``, else ``TEXT``."""
    desc = option.type_descriptor
    if desc.choices:
        return "|".join(str(getattr(c, "value", c)) for c in desc.choices)
    kind = get_args(desc.annotation)[0] if desc.is_list else desc.annotation
    return _TYPE_METAVARS.get(kind, "TEXT")


def plain_help(command: Any) -> None:
    """Give ``command`` (a click command typer built), and the commands of a group below it,
    plain help (module docstring)."""
    for param in command.params:
        if isinstance(param, TyperArgument):
            param.__class__ = PlainArgument  # same fields; only how it is shown differs
            param.metavar = param.metavar or (param.name or "").upper()
        elif isinstance(param, TyperOption) and not param.is_flag and param.metavar is None:
            param.metavar = option_metavar(param)
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            plain_help(sub)
