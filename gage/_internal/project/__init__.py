"""The project: gage.toml and its op definitions, exec/env, source code rules and their selection, dependency specs, the op graph."""
