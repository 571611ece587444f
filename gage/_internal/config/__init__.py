"""Config: reading defaults from a project's files, resolving NAME=VALUE against them, and patching the copied files; one module per file format."""
