"""The command line: a thin shell over the Python API, one public function per verb."""

from forensics.cli.main import cli, main

__all__ = ["cli", "main"]
