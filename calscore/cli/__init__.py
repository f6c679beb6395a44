"""The `calscore` command line (the top floor: it may import everything below). Each command's
docstring is its --help, with an example; the commands live in modules by concern, registered
here in the order `calscore --help` lists them.

`app` is imported on first use: `python -m calscore.cli` decides first whether a command runs under
the supervisor (calscore.cli.supervisor), which needs none of the commands' imports."""
import sys
import types

__all__ = ["app"]


class _CommandLine(types.ModuleType):
    @property
    def app(self):
        """The Typer app with every command registered."""
        from calscore.cli import operations, scoring, labels, label_studio, calibrators, reports, finetune  # noqa: F401, I001
        from calscore.cli.app import app

        return app

    @app.setter
    def app(self, submodule) -> None:
        """Importing the submodule `calscore.cli.app` binds it here; `calscore.cli.app` stays the Typer app."""


sys.modules[__name__].__class__ = _CommandLine
