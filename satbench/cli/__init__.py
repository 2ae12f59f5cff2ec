"""The command line: `satbench <command>` (main.py) and one module per command (commands/)."""
