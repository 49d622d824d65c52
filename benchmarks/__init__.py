"""Scripts that measure the hub and its engine; each says how to run it."""
