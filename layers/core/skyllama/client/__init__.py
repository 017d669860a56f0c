"""Command-line clients: subcommands of ``skyllama`` other than ``serve``."""
