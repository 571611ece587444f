"""Many runs from one command: repro of the op graph, batches of trials."""
