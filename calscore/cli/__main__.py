"""`python -m calscore.cli ...` runs the command line (a command that runs work under a supervisor that
stops it on SIGINT/SIGTERM: calscore.cli.supervisor)."""
import os
import sys

from calscore.cli.supervisor import SUPERVISED_ENV, as_supervised_child, needs_supervision, supervise

if needs_supervision(sys.argv[1:]):
    sys.exit(supervise(sys.argv[1:]))
if SUPERVISED_ENV in os.environ:
    as_supervised_child()
from calscore.cli import app  # noqa: E402  (after the supervisor's choice: it needs none of the commands)

app()
