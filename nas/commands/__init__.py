"""Subcommands of the `nas` command line, one module each."""
