"""The rescaling and geometry analyses (NOTES.md §3-§4)."""
