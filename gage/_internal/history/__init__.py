"""Looking back at runs: compare, diff (and why a run ran), delete plans."""
