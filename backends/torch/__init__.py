"""The torch backend (not implemented yet)."""
