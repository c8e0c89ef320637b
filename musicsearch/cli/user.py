"""``musicsearch user add|list|remove|apikey``: who may use the Subsonic API of ``serve``
(musicsearch/subsonic/users.py keeps them in the user config folder, mode 0600)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..errors import MusicSearchError
from ..subsonic.users import UserStore

user_app = typer.Typer(help="Users of the Subsonic API (musicsearch serve, /rest/).", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The user name a Subsonic app logs in with.")]


def _password(from_stdin: bool) -> str:
    """The password from the first line of stdin, or typed twice at a hidden prompt."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if not password:
            raise MusicSearchError("--password-stdin: stdin held no password")
        return password
    if not sys.stdin.isatty():
        raise MusicSearchError("no terminal to ask for the password: pipe it with --password-stdin")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@user_app.command("add")
def add(
    name: NameArg,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")
    ] = False,
) -> None:
    """Add a user, or set the password of an existing one."""
    users = UserStore()
    new = users.add(name, _password(password_stdin))
    typer.echo(f"{'Added' if new else 'Changed the password of'} user {name} ({users.path})")


@user_app.command("list")
def list_users() -> None:
    """The users, one a line, with how many API keys each has."""
    users = UserStore().load()
    if not users:
        typer.echo("No users yet: add one with musicsearch user add NAME")
    for user in users.values():
        keys = len(user.api_keys)
        typer.echo(f"{user.name}\t{keys} API key{'s' if keys != 1 else ''}")


@user_app.command("remove")
def remove(name: NameArg) -> None:
    """Remove a user (and the user's API keys)."""
    UserStore().remove(name)
    typer.echo(f"Removed user {name}")


@user_app.command("apikey")
def apikey(name: NameArg) -> None:
    """Print a new API key for a user (OpenSubsonic apiKey); it is shown only now."""
    typer.echo(UserStore().new_api_key(name))
