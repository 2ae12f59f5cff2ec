"""What a run leaves behind: result records, per-image predictions, their checks, names and provenance."""
