"""The `gage` command: main and the parser, one module per verb, the helpers verbs share, the table formatter. Nothing below imports it."""
