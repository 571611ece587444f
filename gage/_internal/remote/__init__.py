"""Remotes: runs and their files shared between machines (push, pull,
list, and the remote side of `--needed`)."""
