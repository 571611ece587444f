"""Where staged runs start: the Engine protocol, the local engine, the Dask engine (task, warm starter, local cluster, run archives), and a run's own process entry point."""
