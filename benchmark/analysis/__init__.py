"""Analyses of victim architectures that need no attack run (R-GAP's rank analysis)."""
