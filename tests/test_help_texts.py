"""Help texts keep every word: rich's help formatter read a bracketed term ('[execution]', a task file's section)
as a style tag and dropped it ("instead of the task file's ."). Every command's source texts (docstring or help=,
and each parameter's help) are read from the Typer apps themselves, not from the click tree that renders them, and
each bracketed term in them must appear in the rendered `--help`."""
from __future__ import annotations

import inspect
import re

from typer.models import DefaultPlaceholder, ParameterInfo
from typer.testing import CliRunner

from calscore.cli import app

runner = CliRunner()
BRACKETED = re.compile(r"\[[^\[\]]+\]")


def _text(value) -> str:
    return (value.value if isinstance(value, DefaultPlaceholder) else value) or ""


def _param_helps(callback) -> list[str]:
    return [_text(p.default.help) for p in inspect.signature(callback).parameters.values()
            if isinstance(p.default, ParameterInfo)]


def source_texts(typer_app, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], list[str]]:
    """{command path: its help texts as written in the source}, for the app, every group and every command."""
    own = [_text(typer_app.info.help)]
    if typer_app.registered_callback:
        own += _param_helps(typer_app.registered_callback.callback)
    out = {path: own}
    for info in typer_app.registered_commands:
        name = info.name or info.callback.__name__.replace("_", "-")
        out[(*path, name)] = [_text(info.help) or inspect.getdoc(info.callback) or "", *_param_helps(info.callback)]
    for group in typer_app.registered_groups:
        out.update(source_texts(group.typer_instance, (*path, group.name)))
    return out


def rendered(path: tuple[str, ...]) -> str:
    """`calscore <path> --help` as one line of words (panel borders and line breaks taken out)."""
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())


SOURCES = source_texts(app)


def test_every_bracketed_term_of_a_help_text_is_shown():
    lost = {}
    for path, texts in SOURCES.items():
        shown = rendered(path)
        terms = {" ".join(t.split()) for text in texts for t in BRACKETED.findall(text)}
        missing = sorted(t for t in terms if t not in shown)
        if missing:
            lost[" ".join(path) or "calscore"] = missing
    assert not lost, f"bracketed terms missing from --help: {lost}"


def test_the_walk_found_the_commands_and_their_bracketed_terms():
    assert {("score",), ("labels", "import"), ("calibrators", "promote")} <= set(SOURCES)
    assert "[execution]" in " ".join(SOURCES[("score",)]) and "[execution]." in rendered(("score",))
    assert "[calibration] refit_after_new_labels" in rendered(("labels", "import"))
