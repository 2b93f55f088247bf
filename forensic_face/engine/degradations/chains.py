"""Chains of degradations (eq. 1, Figure 2), the budgets that select them, and the walk that degrades a
gallery along them.

Chains follow eq. (1): ``G_H = rho3(down2(rho2(down2(rho1(G)))))``, where ``down2`` halves the size with
antialiased bicubic interpolation, so a chain of length k yields an image of size ``H / 2**(k-1)``.
The chains form a tree (Figure 2); :func:`iter_degraded` walks it depth first so every prefix is computed once
for the whole batch. Randomness at a tree node is drawn from a generator seeded by :func:`node_seed` from the
image's seed and the node's prefix, so an image's hypothesis for a path never depends on the batch it was in or
on which other paths were requested. Every chain and budget is derived from the bank (:mod:`.bank`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from forensic_face.engine.callbacks import check_cancel
from forensic_face.engine.check import check_image_batch
from forensic_face.engine.config import BUDGETS
from forensic_face.engine.degradations.bank import _REGISTRY, Degradation, available_degradations, get_degradation
from forensic_face.engine.degradations.ops import ALGORITHM_VERSION, Params, down2
from forensic_face.engine.errors import ConfigError, ShapeError

log = logging.getLogger(__name__)

Path = tuple[str, ...]


# --------------------------------------------------------------------------------------------- paths


def path_label(path: Sequence[str]) -> str:
    """``("gauss_noise", "disk_blur")`` -> ``"gauss_noise>down>disk_blur"`` (the downsampling made explicit)."""
    if not path:
        raise ConfigError("a degradation path needs at least one step")
    return ">down>".join(path)


#: Label of the undegraded gallery crop, always the first gallery hypothesis.
ORIGINAL_PATH = "original"


def describe_path(label: str) -> str:
    """A gallery hypothesis label in words, for investigators and reports.

    >>> describe_path("speckle>down>gauss_noise>down>gauss_blur")
    'speckle noise, then half size, then Gaussian noise, then half size, then Gaussian blur'
    >>> describe_path("original")
    'the portrait as enrolled'
    """
    if label == ORIGINAL_PATH:
        return "the portrait as enrolled"
    # A name this version does not know (a case from another version) is shown as it is, never refused.
    steps = [(_REGISTRY[n].plain or n) if n in _REGISTRY else n for n in label.split(">down>")]
    return ", then half size, then ".join(steps)


def parse_path_label(label: str) -> Path:
    """Inverse of :func:`path_label`; unknown names raise :class:`ConfigError`."""
    path = tuple(label.split(">down>"))
    for name in path:
        get_degradation(name)
    return path


def all_paths(num_degradations: int | None = None, max_len: int = 3) -> list[Path]:
    """Every chain of the first ``num_degradations`` registered degradations (default: all of them) of length
    1..``max_len`` (eq. 1, Figure 2).

    Order: by length, then lexicographically by registration (Table 1) index (``itertools.product`` order). With
    the 11 degradations of Table 1 that is 11 + 121 + 1331 = 1,463 paths.
    """
    registered = available_degradations()
    num_degradations = len(registered) if num_degradations is None else num_degradations
    if not 1 <= num_degradations <= len(registered):
        raise ConfigError(f"num_degradations must be in 1..{len(registered)}, got {num_degradations}")
    if max_len < 1:
        raise ConfigError(f"max_len must be >= 1, got {max_len}")
    names = registered[:num_degradations]
    paths: list[Path] = [(n,) for n in names]
    frontier = list(paths)
    for _ in range(max_len - 1):
        frontier = [p + (n,) for p in frontier for n in names]
        paths.extend(frontier)
    return paths


def _stable_key(*parts: object) -> bytes:
    return hashlib.sha256(":".join(str(p) for p in (ALGORITHM_VERSION, *parts)).encode()).digest()


def _stable_permutation(n: int, *key: object) -> list[int]:
    """A permutation of ``range(n)`` fixed by ``key`` on every machine and Python version (SHA-256 order)."""
    return sorted(range(n), key=lambda i: _stable_key(*key, i))


#: Rounds of the balanced sample per chain length in the "standard" budget: 11 + 2*11 + 3*11 = 66 paths.
STANDARD_ROUNDS = {2: 2, 3: 3}


def balanced_rounds(seed: int = 0, rounds: dict[int, int] = STANDARD_ROUNDS) -> list[tuple[int, set[Path]]]:
    """The balanced sample of chains, one ``(length, chains)`` entry per round, in drawing order.

    Each round of a length builds one chain per registered degradation (11 for Table 1) from independent seeded
    permutations of the registered degradations, one per position, so every degradation occurs exactly once at
    every position of that round; a round that would repeat a chain already chosen (or a single) is redrawn. Permutations come from SHA-256 of ``(seed, length, round,
    position, attempt, index)``, so the sample is identical on every machine.
    """
    names = available_degradations()
    chosen: set[Path] = set(all_paths(max_len=1))
    drawn: list[tuple[int, set[Path]]] = []
    for length, num_rounds in rounds.items():
        for round_index in range(num_rounds):
            for attempt in range(1000):
                perms = [_stable_permutation(len(names), seed, length, round_index, pos, attempt)
                         for pos in range(length)]
                batch = {tuple(names[perms[pos][i]] for pos in range(length)) for i in range(len(names))}
                if not batch & chosen:
                    chosen |= batch
                    drawn.append((length, batch))
                    break
            else:  # pragma: no cover - 1000 collisions in a row would need an astronomically unlucky seed
                raise ConfigError(f"could not draw a balanced path set for seed {seed}")
    return drawn


def select_paths(budget: str, seed: int = 0) -> list[Path]:
    """The degradation paths of a compute budget.

    * ``"none"``: ``[]`` (the caller uses the undegraded gallery image only).
    * ``"fast"``: 11 pairs, the first round of the standard budget's balanced pairs (every degradation once at
      each position), so ``fast`` is a subset of ``standard``. Pairs rather than the 11 singles at the same
      cost: with template fusion they rank about 3 points higher at 24 px (their 2x downsampling between the two
      degradations brings the portrait nearer a tiny probe; measured in ``docs/accuracy.md``). Until
      2026-12-06 ``fast`` was the 11 singles.
    * ``"standard"``: 66 paths: the 11 singles and the rounds of :func:`balanced_rounds`, 2 of pairs and 3 of
      triples (22 pairs, 33 triples), so every degradation occurs exactly twice at every position of the pairs
      and three times at every position of the triples.
    * ``"paper"``: all 1,463 paths of :func:`all_paths`.

    Returned in :func:`all_paths` order.
    """
    if budget == "none":
        return []
    if budget == "paper":
        return all_paths()
    if budget == "fast":
        chosen = balanced_rounds(seed, {2: 1})[0][1]
    elif budget == "standard":
        chosen = set(all_paths(max_len=1)).union(*(batch for _, batch in balanced_rounds(seed)))
    else:
        raise ConfigError(f"unknown degradation budget {budget!r}; expected one of {', '.join(BUDGETS)}")
    order = {p: i for i, p in enumerate(all_paths())}
    return sorted(chosen, key=order.__getitem__)


# --------------------------------------------------------------------------------------------- gallery


def node_seed(image_seed: int, prefix: Sequence[str]) -> int:
    """Seed of the generator for the last step of ``prefix`` applied to the image with ``image_seed``.

    SHA-256 of the algorithm version, the image seed and the prefix label, first 8 bytes, 63 bits; identical on
    every machine (no ``hash()``).
    """
    digest = _stable_key(int(image_seed), path_label(prefix))
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def sample_node_params(degradation: Degradation, prefix: Sequence[str], seeds: Sequence[int], height: int,
                       width: int) -> Params:
    """Per-image params for the tree node ``prefix`` (whose last step is ``degradation``), stacked ``(N, ...)``.

    Each image draws from its own CPU generator seeded with :func:`node_seed`, so its parameters do not depend
    on the other images in the batch. Only the small random draws loop over images; applying is batched.
    """
    generator = torch.Generator(device="cpu")
    per_image: list[Params] = []
    for seed in seeds:
        generator.manual_seed(node_seed(seed, prefix))
        per_image.append(degradation.sample(1, generator, height, width))
    keys = per_image[0].keys() if per_image else ()
    return {k: torch.cat([p[k] for p in per_image], dim=0) for k in keys}


@dataclass(frozen=True)
class DegradedPath:
    """The hypotheses of one path for every image of the batch: ``images`` ``(N,3,h,w)``, ``h = H / 2**(k-1)``."""

    path: Path
    images: torch.Tensor

    @property
    def label(self) -> str:
        return path_label(self.path)


def _validate_paths(paths: Sequence[Sequence[str]]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        path = tuple(path)
        if not path:
            raise ConfigError("a degradation path needs at least one step")
        for name in path:
            get_degradation(name)
        out.append(path)
    return out


def _seed_list(seeds: Sequence[int] | torch.Tensor, num_images: int) -> list[int]:
    values = seeds.tolist() if isinstance(seeds, torch.Tensor) else [int(s) for s in seeds]
    if len(values) != num_images:
        raise ShapeError(f"need one seed per image: {num_images} images, {len(values)} seeds")
    return [int(v) for v in values]


def iter_degraded(
    images: torch.Tensor,
    paths: Sequence[Sequence[str]],
    seeds: Sequence[int] | torch.Tensor,
    device: torch.device | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> Iterator[DegradedPath]:
    """Yield one :class:`DegradedPath` per distinct requested path, walking the chain tree depth first.

    A tree node (a prefix) is computed once for the whole batch and shared by every requested path below it,
    and only the live branch is kept in memory, so streaming the output into a recognizer keeps memory at
    about ``max_len`` image batches. Paths come out in depth-first Table 1 order (a prefix before its
    extensions), not in request order. ``progress(done_nodes, total_nodes, label)`` is called after each node;
    :class:`Cancelled` is raised between nodes when ``should_cancel()`` is true.
    """
    check_image_batch(images)
    wanted = _validate_paths(paths)
    seed_list = _seed_list(seeds, images.shape[0])
    device = device or images.device
    requested = set(wanted)
    nodes = {p[:k] for p in requested for k in range(1, len(p) + 1)}
    rank = {name: i for i, name in enumerate(_REGISTRY)}
    children: dict[Path, list[str]] = {}
    for node in nodes:
        children.setdefault(node[:-1], []).append(node[-1])
    for kids in children.values():
        kids.sort(key=rank.__getitem__)
    total = len(nodes)
    done = 0
    x0 = images.to(device=device)

    stack: list[tuple[Path, torch.Tensor]] = [((name,), x0) for name in reversed(children.get((), []))]
    while stack:
        check_cancel(should_cancel)
        prefix, x_in = stack.pop()
        degradation = get_degradation(prefix[-1])
        params = sample_node_params(degradation, prefix, seed_list, x_in.shape[-2], x_in.shape[-1])
        out = degradation.apply(x_in, params)
        done += 1
        if progress is not None:
            progress(done, total, path_label(prefix))
        if prefix in requested:
            yield DegradedPath(prefix, out)
        below = children.get(prefix)
        if below:
            x_next = down2(out)
            stack.extend((prefix + (name,), x_next) for name in reversed(below))
    log.debug("degraded %d images along %d paths (%d tree nodes)", images.shape[0], len(requested), total)


def degrade_gallery(
    images: torch.Tensor,
    paths: Sequence[Sequence[str]],
    seeds: Sequence[int] | torch.Tensor,
    device: torch.device | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> list[DegradedPath]:
    """Degrade ``images`` ``(N,3,H,W)`` along every path; one :class:`DegradedPath` per entry of ``paths``,
    in the same order (repeated paths share one tensor). See :func:`iter_degraded` for reuse and seeding.

    Output sizes: a path of length k gives ``(N,3,H//2**(k-1),W//2**(k-1))`` (each halving floors).
    """
    wanted = _validate_paths(paths)
    results = {d.path: d for d in iter_degraded(images, wanted, seeds, device, progress, should_cancel)}
    return [results[p] for p in wanted]
