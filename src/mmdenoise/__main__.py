"""``python -m mmdenoise ...``: the ``mmdenoise`` command, where its script is not on PATH."""
from .cli import main

main()
