"""`python -m calscore.cli ...` runs the command line."""
from calscore.cli import app

app()
