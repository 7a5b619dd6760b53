"""Named random streams derived from one master seed.

Every source of randomness in a world draws from its own named stream
(``streams.rng("erp.latency")``). A stream's seed is a SHA-256 of the master
seed and the name -- never Python's ``hash()``, which is salted per process --
so a stream draws the same numbers in every process, and adding a new stream
never shifts the draws of an existing one (the usual way a simulation loses
reproducibility when it grows).
"""

from __future__ import annotations

import hashlib
import random

__all__ = ["RandomStreams", "derive_seed"]


def derive_seed(master_seed: int, name: str) -> int:
    """A 64-bit seed for stream `name`, stable across processes and versions."""
    digest = hashlib.sha256(f"syncbed:{master_seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


class RandomStreams:
    """The seeded generators of one world, created on first use by name."""

    def __init__(self, master_seed: int) -> None:
        if not isinstance(master_seed, int) or isinstance(master_seed, bool):
            raise TypeError(f"master seed must be an int, not {master_seed!r}")
        self.master_seed = master_seed
        self._rngs: dict[str, random.Random] = {}
        self._fakers: dict[tuple[str, str], object] = {}

    def rng(self, name: str) -> random.Random:
        """The generator for stream `name` (the same object on every call)."""
        try:
            return self._rngs[name]
        except KeyError:
            r = self._rngs[name] = random.Random(derive_seed(self.master_seed, name))
            return r

    def faker(self, name: str, locale: str = "en_US"):
        """A Faker seeded from stream `name`; its output depends only on the
        master seed, the name and the pinned Faker version."""
        key = (name, locale)
        try:
            return self._fakers[key]
        except KeyError:
            # Imported here: Faker takes ~100 ms to import and most runs of the
            # kernel never need it.
            from faker import Faker

            fk = Faker(locale)
            fk.seed_instance(derive_seed(self.master_seed, "faker:" + name))
            self._fakers[key] = fk
            return fk
