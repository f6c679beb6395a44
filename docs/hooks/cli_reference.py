"""The CLI reference, generated at build time from the real `--help` of every command (an MkDocs hook).

docs/reference/cli.md holds the hand-written overview and MARKER; every build replaces the marker with one
section per command holding the text `calscore ... --help` prints, so the reference cannot drift from the code.
The tests walk the command tree with `command_paths` too (tests/test_cli_help.py).
"""
from __future__ import annotations

MARKER = "<!-- cli-reference -->"
# The help texts are written for about 100 columns: at 80, rich breaks their lines mid-sentence.
COLUMNS = "100"


def command_paths(command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and sub-command below `command`, as argument paths ((), ('init',), ('x', 'y'), ...)."""
    paths = [path]
    if hasattr(command, "list_commands"):  # a group (typer may carry its own copy of click: no isinstance)
        ctx = command.context_class(command)
        for name in command.list_commands(ctx):
            paths.extend(command_paths(command.get_command(ctx, name), (*path, name)))
    return paths


def help_text(path: tuple[str, ...]) -> str:
    """What `calscore <path> --help` prints, without the spaces rich pads its lines with."""
    from typer.testing import CliRunner

    from calscore.cli import app

    result = CliRunner().invoke(app, [*path, "--help"], prog_name="calscore", env={"COLUMNS": COLUMNS})
    if result.exit_code != 0:
        raise RuntimeError(f"`calscore {' '.join(path)} --help` exited {result.exit_code}: {result.output}")
    return "\n".join(line.rstrip() for line in result.output.strip("\n").splitlines())


def reference() -> str:
    """One section per command, in the order `calscore --help` lists them, each with its help as printed."""
    import typer

    from calscore.cli import app

    sections = []
    for path in command_paths(typer.main.get_command(app)):
        sections.append(f"## {' '.join(('calscore', *path))}\n\n```text\n{help_text(path)}\n```\n")
    return "\n".join(sections)


def on_page_markdown(markdown: str, **_) -> str:
    return markdown.replace(MARKER, reference()) if MARKER in markdown else markdown
