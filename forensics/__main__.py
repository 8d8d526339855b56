"""``python -m forensics``: the command line."""

from forensics.cli.main import main

main()
