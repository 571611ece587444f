"""The runs home: listing, the one loader and selection rule, status, run records, deletion through the trash, and the runs index (a sqlite cache of meta)."""
