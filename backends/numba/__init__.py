"""The Numba backend (not implemented yet)."""
