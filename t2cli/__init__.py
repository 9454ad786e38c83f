"""The `t2` command line: a thin adapter over t2core, the flows and the catalog."""
