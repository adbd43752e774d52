"""Traffic: arrival processes and request-length distributions, all seeded."""
