"""Feature families shipped with imi-bench (importing this package registers them)."""
