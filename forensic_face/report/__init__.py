"""Case reports (PDF)."""
