"""Test fixtures that tests, benches and rehearsals share: tiny random models with real tokenizers.

Nothing in the library imports this package; it holds what we build in place of hub downloads
(no weights or datasets can be fetched on CI machines).
"""
