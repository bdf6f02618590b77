"""What the methods are, by name, torch-free: the reporting steps read it without loading torch."""

# The targets built from rows of S, and whether they drop the true class from the row (NOTES §2).
SIMILARITY_TARGETS = {"kd_sim": False, "kd_pt_sim": True}
