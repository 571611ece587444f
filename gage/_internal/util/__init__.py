"""Generic helpers with no knowledge of gage's data: files (copy, reflink, read-only, sha256, safe opens, atomic writes) and processes (spawn, capture output, liveness, process groups)."""
