"""The HTTP front of t2: an OpenAI-compatible server over `t2ops.respond` (a thin adapter, like the CLI)."""
