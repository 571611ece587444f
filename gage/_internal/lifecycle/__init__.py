"""A run's lifecycle: stage (source, config, runtime, dependencies, hooks), inputs and --needed, verify, start, finalize, summary."""
