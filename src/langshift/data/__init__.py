"""Training data: English pairs (english.py, the oasst1 rule) -> segmented, cached, translated,
filtered cross-lingual `Record`s (segment.py, cache.py, translators.py, filters.py, build.py); the
packaged demo set (seed.py, demo/)."""
