"""The language server: `server.py` holds the server object and its handler table, `analysis.py` the
per-document state and the scheduling of model work, `features/` one LSP feature per file."""
