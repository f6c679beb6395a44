"""The `calscore` command line (the top floor: it may import everything below). Each command's
docstring is its --help, with an example; the commands live in modules by concern, registered
here in the order `calscore --help` lists them."""
from calscore.cli import operations, scoring, labels, label_studio, calibrators, reports, finetune  # noqa: F401, I001
from calscore.cli.app import app

__all__ = ["app"]
