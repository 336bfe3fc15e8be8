"""Named, versioned protocols. A suite fixes everything a published number depends on.

``name@version`` identifies a suite; any change to what it measures (split,
image size, labels, N, K, test seed, number of test episodes) gets a new
version. Its fingerprint hashes the frozen test episodes themselves, so two
results with the same fingerprint were measured on the very same episodes.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass

from .data.episodes import ClassPool, EpisodeSampler, LabelOffsetSampler, episodes_digest, label_offset_steps
from .data.miniimagenet import load_miniimagenet
from .data.stream import EpisodeStream
from .data.omniglot import load_omniglot
from .errors import DataNotFoundError, FewshotMemError
from .models.learner import TaskSpec
from .results import episodic_key


class UnknownSuiteError(FewshotMemError):
    pass


@dataclass(frozen=True)
class Suite:
    name: str
    version: int
    title: str
    dataset: str  # "omniglot" or "miniimagenet"
    train_split: str
    val_split: str
    test_split: str
    image_size: int
    ways: int
    label_encoding: str = "one-hot"
    instances_per_class: int = 10  # online protocol: K appearances of each class
    episode_length: int | None = None  # online protocol: the first L steps of the N·K shuffled (None: all)
    shots: tuple[int, ...] = (1, 5)  # episodic protocol tables
    queries: int = 15  # test queries per class in the episodic protocol
    test_seed: int = 20161  # test episodes are episodes 0..n-1 of this seed
    validation_seed: int = 20162
    train_seed: int = 0
    test_episodes: int = 1000
    protocols: tuple[str, ...] = ("online", "episodic")
    references: tuple[str, ...] = ()  # BibTeX keys of the papers whose tables this suite follows

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def channels(self) -> int:
        return 1 if self.dataset == "omniglot" else 3

    @property
    def online_steps(self) -> int:
        """Time steps of an online episode."""
        return label_offset_steps(self.ways, self.instances_per_class, self.episode_length)

    def task(self) -> TaskSpec:
        return TaskSpec(self.ways, self.label_encoding, (self.channels, self.image_size, self.image_size))

    def online_sampler(self, pool: ClassPool, seed: int, augment: bool = False) -> LabelOffsetSampler:
        return LabelOffsetSampler(pool, self.ways, self.instances_per_class, self.label_encoding, seed, augment,
                                  length=self.episode_length)

    def episodic_sampler(self, pool: ClassPool, shots: int, seed: int, ways: int | None = None,
                         queries: int | None = None) -> EpisodeSampler:
        return EpisodeSampler(pool, ways or self.ways, shots, self.queries if queries is None else queries, seed)

    def training_sampler(self, train_pool: ClassPool, protocol: str, seed: int = 0, shots: int | None = None,
                         ways: int | None = None, queries: int | None = None,
                         augment: bool = False) -> LabelOffsetSampler | EpisodeSampler:
        """Training episodes of ``protocol`` (seed ``train_seed + seed``), as the bench trains on them:
        online sequences (``augment``: rotations and shifts), or N-way K-shot episodes (default: the
        suite's N, its first K, its queries)."""
        if protocol == "online":
            return self.online_sampler(train_pool, seed=self.train_seed + seed, augment=augment)
        return self.episodic_sampler(train_pool, shots or self.shots[0], seed=self.train_seed + seed, ways=ways,
                                     queries=queries)

    def validation_sampler(self, val_pool: ClassPool, protocol: str) -> LabelOffsetSampler | EpisodeSampler:
        """The validation episodes of ``protocol`` (the bench's model selection), on the val classes."""
        if protocol == "online":
            return self.online_sampler(val_pool, seed=self.validation_seed)
        return self.episodic_sampler(val_pool, self.shots[0], seed=self.validation_seed)

    def train_episodes(self, batch_size: int, *, seed: int = 0, protocol: str = "episodic", shots: int | None = None,
                       ways: int | None = None, queries: int | None = None, augment: bool = False,
                       batches: int | None = None, data_root=None) -> EpisodeStream:
        """Training batches for your own loop: an iterable and ``IterableDataset`` of ``SequenceBatch``
        (online) or ``EpisodeBatch`` (episodic) of ``batch_size`` episodes each, endless unless
        ``batches`` is given, the same with any number of DataLoader workers. Shapes and dtypes:
        ``data.stream``. Loads the suite's data (``data_root``: default $FEWSHOT_MEM_DATA or data/)."""
        sampler = self.training_sampler(cached_pools(self, data_root)["train"], self._protocol(protocol), seed,
                                        shots, ways, queries, augment)
        return EpisodeStream(sampler, batch_size, batches)

    def validation_episodes(self, batch_size: int, batches: int, *, protocol: str = "episodic",
                            data_root=None) -> EpisodeStream:
        """The validation batches (val classes, fixed seed), as ``train_episodes`` gives training ones."""
        return EpisodeStream(self.validation_sampler(cached_pools(self, data_root)["val"], self._protocol(protocol)),
                             batch_size, batches)

    def _protocol(self, protocol: str) -> str:
        if protocol not in ("online", "episodic"):
            raise FewshotMemError(f"protocol must be 'online' or 'episodic', not {protocol!r}")
        if protocol == "episodic" and self.label_encoding != "one-hot":
            raise FewshotMemError(f"{self.id} has string labels: its episodes come in the online protocol only")
        return protocol

    def test_samplers(self, test_pool: ClassPool) -> dict[str, LabelOffsetSampler | EpisodeSampler]:
        """The frozen test episodes of every table: "online" and "<N>-way-<K>-shot"."""
        samplers: dict[str, LabelOffsetSampler | EpisodeSampler] = {}
        if "online" in self.protocols:
            samplers["online"] = self.online_sampler(test_pool, self.test_seed)
        if "episodic" in self.protocols:
            for shots in self.shots:
                samplers[episodic_key(self.ways, shots)] = self.episodic_sampler(test_pool, shots, self.test_seed)
        return samplers

    def definition(self) -> dict:
        """The suite's fields, as its fingerprint hashes them. ``episode_length`` came after the
        first suites were published: it is left out where unset, so their fingerprints stay."""
        fields = asdict(self)
        if fields["episode_length"] is None:
            del fields["episode_length"]
        return fields

    def fingerprint(self, test_pool: ClassPool, episodes: int | None = None) -> str:
        """sha256 of the suite's definition and of every frozen test episode (or of the first
        ``episodes`` of them, for quick checks that are not the suite's numbers)."""
        digest = hashlib.sha256(json.dumps(self.definition(), sort_keys=True).encode())
        for table, sampler in sorted(self.test_samplers(test_pool).items()):
            digest.update(f"{table}:{episodes_digest(sampler, episodes or self.test_episodes)}".encode())
        return digest.hexdigest()


def _omniglot(name: str, title: str, size: int, ways: int, version: int = 1, **fields) -> Suite:
    return Suite(name=name, version=version, title=title, dataset="omniglot", train_split="vinyals/train",
                 val_split="vinyals/val", test_split="vinyals/test", image_size=size, ways=ways, **fields)


# Version 2 of the MAML / ProtoNets suites drops the online table that version 1 also had: those
# papers report N-way K-shot accuracy only, and re-adapting MAML on each of the 199 prefixes of a
# 20-way online sequence is days of CPU for a number no one compares with. Santoro's suites carry
# the online protocol for every model.
_EPISODIC_ONLY = dict(version=2, protocols=("episodic",))

SUITES: dict[str, Suite] = {s.name: s for s in (
    _omniglot("omniglot-5way", "Santoro et al. (2016) Table 1: 5 classes x 10 instances, one-hot labels",
              20, 5, references=("santoro2016",)),
    # Version 2 follows the paper's Figure 2 caption: episodes of 100 steps for the string-label
    # experiments, not version 1's 15 x 10 = 150 (more steps than MANN's 128 memory slots). How
    # the 100 steps are drawn the paper does not say; as in a public reimplementation
    # (unixpickle/sgdstore), they are the first 100 of a shuffle of every drawing of the 15
    # classes (20 each), so a class appears about 6.7 times, and ten times or more in some episodes.
    _omniglot("omniglot-15way-strings", "Santoro et al. (2016) Table 2: 15 classes, five-character string labels, "
              "episodes of 100 steps", 20, 15, version=2, label_encoding="string", instances_per_class=20,
              episode_length=100, protocols=("online",), references=("santoro2016",)),
    # Forgetting (issue 24): 25 classes x 10 instances = 250 presentations, against the 128 slots of
    # Santoro's memory, so a memory model must overwrite what it stored; read with accuracy by lag.
    # 25 one-hot classes rather than a 5-way episode with a smaller memory: the suite alone then
    # fixes the episode, every family is run at its own size, and none gets a recipe of its own.
    _omniglot("omniglot-25way-forgetting", "Forgetting: 25 classes x 10 instances (250 presentations, more "
              "than MANN's 128 memory slots), one-hot labels", 20, 25, protocols=("online",),
              references=("santoro2016",)),
    _omniglot("omniglot-5way-1shot", "MAML / ProtoNets: Omniglot 5-way 1-shot, 28x28", 28, 5, shots=(1,),
              **_EPISODIC_ONLY, references=("finn2017", "snell2017", "vinyals2016")),
    _omniglot("omniglot-5way-5shot", "MAML / ProtoNets: Omniglot 5-way 5-shot, 28x28", 28, 5, shots=(5,),
              **_EPISODIC_ONLY, references=("finn2017", "snell2017", "vinyals2016")),
    _omniglot("omniglot-20way-1shot", "MAML / ProtoNets: Omniglot 20-way 1-shot, 28x28", 28, 20, shots=(1,),
              **_EPISODIC_ONLY, references=("finn2017", "snell2017", "vinyals2016")),
    _omniglot("omniglot-20way-5shot", "MAML / ProtoNets: Omniglot 20-way 5-shot, 28x28", 28, 20, shots=(5,),
              **_EPISODIC_ONLY, references=("finn2017", "snell2017", "vinyals2016")),
    Suite("miniimagenet-5way-1shot", 1, "mini-ImageNet 5-way 1-shot (Ravi & Larochelle split), 84x84",
          "miniimagenet", "train", "val", "test", 84, 5, shots=(1,), test_episodes=600,
          references=("ravi2017", "vinyals2016", "finn2017", "snell2017")),
    Suite("miniimagenet-5way-5shot", 1, "mini-ImageNet 5-way 5-shot (Ravi & Larochelle split), 84x84",
          "miniimagenet", "train", "val", "test", 84, 5, shots=(5,), test_episodes=600,
          references=("ravi2017", "vinyals2016", "finn2017", "snell2017")),
)}


# Superseded versions still served, by id: entries on the board were measured on them.
EARLIER_VERSIONS: dict[str, Suite] = {s.id: s for s in (
    _omniglot("omniglot-15way-strings", "Santoro et al. (2016) Table 2: 15 classes, five-character string labels",
              20, 15, label_encoding="string", protocols=("online",), references=("santoro2016",)),
)}


def all_suites() -> list[Suite]:
    """Every suite served: the current versions, then the earlier ones."""
    return [*SUITES.values(), *EARLIER_VERSIONS.values()]


def get_suite(name: str) -> Suite:
    """A suite by ``name`` (its current version) or ``name@version``."""
    base, _, version = name.partition("@")
    suite = SUITES.get(base)
    if suite is not None and version and version != str(suite.version):
        suite = EARLIER_VERSIONS.get(name)
    if suite is None:
        raise UnknownSuiteError(f"unknown suite {name!r}; available: {', '.join(s.id for s in all_suites())}")
    return suite


@functools.lru_cache(maxsize=2)
def cached_pools(suite: Suite, data_root=None) -> dict[str, ClassPool]:
    """``load_pools`` once per suite and data root (the episode streams of a training loop share them)."""
    return load_pools(suite, data_root, progress=False)


def load_pools(suite: Suite, data_root=None, progress: bool = True, download: bool = True) -> dict[str, ClassPool]:
    """The suite's train, val and test classes at its image size (mini-ImageNet's memory-mapped from its cache)."""
    roles = (("train", suite.train_split), ("val", suite.val_split), ("test", suite.test_split))
    if suite.dataset == "omniglot":
        omniglot = load_omniglot(data_root, progress=progress, download=download)
        return {role: omniglot.pool(split, suite.image_size) for role, split in roles}
    if suite.dataset == "miniimagenet":
        miniimagenet = load_miniimagenet(data_root, progress=progress, download=download)
        return {role: miniimagenet.pool(split, suite.image_size) for role, split in roles}
    raise DataNotFoundError(f"{suite.id} names an unknown dataset {suite.dataset!r}; known: omniglot, miniimagenet")
