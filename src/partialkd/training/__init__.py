"""The trainers: the epoch loop and resume, one module per trainer kind, the run directory, and reading runs back."""
