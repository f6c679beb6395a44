"""Small helpers every other part of `jobs/` uses: the clock, file hashes, and waiting with a deadline."""
