"""The seeds' flows, one module each; see `sync_core.core.FLOWS` for the order."""
