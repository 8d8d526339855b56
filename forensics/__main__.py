"""``python -m forensics``: the command line."""

from .cli import main

main()
