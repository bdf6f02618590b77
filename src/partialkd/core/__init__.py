"""The method: targets, losses, grid points and metrics (NOTES.md §2)."""
