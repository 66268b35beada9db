"""Test fixtures that tests, benches and rehearsals share: tiny random models with real tokenizers
(`tiny`, `tiny_mt`), and a Hugging Face hub cache of stand-ins under the paper configs' ids (`hub`).

Nothing in the library imports this package; it holds what we build in place of hub downloads
(no weights or datasets can be fetched on CI machines).
"""
