"""Small shared helpers: atomic file writes, seeding and RNG state, machine and version info."""
