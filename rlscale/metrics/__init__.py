"""What a controller sees: scraped, delayed, aggregated metrics, with staleness kept as missing."""
