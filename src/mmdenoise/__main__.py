"""``python -m mmdenoise ...``: the ``mmdenoise`` command, where its script is not on PATH."""
from .cli import main

if __name__ == "__main__":  # imported (not run) it does nothing
    main()
