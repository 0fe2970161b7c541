"""Developer tools (not installed with the package): benchmark, notes-reading check."""
