"""``python -m moescale``: the command line."""

from moescale.cli import main

main()
