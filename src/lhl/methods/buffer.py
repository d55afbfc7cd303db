"""The replay buffer shared by DER and iCaRL: images with their task and a stored map
(docs/deviations.md, "Replay buffer (iCaRL, DER)").

One buffer of ``size`` items in total (HAD paper, App. C.3: "the exemplar size is fixed at 50"). Each item is an image ``[3,H,W]``, the name of
its task and a per-pixel target map ``[C_task,H,W]`` (DER: the head's raw output at insertion;
iCaRL: sigmoid / post-processed output), kept in fp16 on the CPU (a 13×288×384 fp32 map is
5.8 MB). Two ways in:

- :meth:`ReplayBuffer.reservoir` — reservoir sampling (Vitter's algorithm R) over every item ever
  offered: after N offers each one is in the buffer with probability min(1, size/N) (DER).
- :meth:`ReplayBuffer.select` — end-of-phase selection (iCaRL): the quota is rebalanced evenly
  over the tasks seen so far (size // tasks each, the remainder to the earliest tasks), older
  tasks keep the head of their list (herding order = priority order), and the new task's items
  are chosen by :func:`herding` on globally pooled encoder features, or at random.

:meth:`ReplayBuffer.sample` draws a replay mini-batch without replacement and augments each
stored image and its map **jointly**: a horizontal flip with p = 0.5 of both, the map flipped as
its task flips outputs (:meth:`~lhl.tasks.Task.flip_output`: the x component of surface normals
negated) — the same rule the data layer applies to labels. Every random choice uses the buffer's own seeded generator, whose state
is part of :meth:`state_dict`, so a resumed run replays exactly what an uninterrupted one would.

:func:`replay_loss` runs a replay mini-batch through the encoder once and each sample through its
own task's head; :class:`ReplayMethod` is the base class of DER and iCaRL.

Under DDP the buffer is **replicated**: every process holds the same ``size`` items (50 in total,
not 50 per process), the same counter and the same generator state, so the checkpoint is the
buffer as with one process. DER (:meth:`ReplayMethod.offer`): every process draws the reservoir
slots of the whole global batch, in one process's order, from the shared generator; only the
kept items are gathered from the processes that hold them. iCaRL: features of the whole phase
dataset are computed in contiguous shards and gathered, herding runs on all of them alike, and
the chosen images and maps are computed in shards and gathered. Each process then draws the same
replay mini-batch, so the replay term is the same everywhere and DDP's gradient averaging leaves
it as one process would have it. A sharded buffer (size/world per process) would save memory but
make the reservoir's keep-probability and iCaRL's global herding depend on the process count.
"""

from __future__ import annotations

from dataclasses import dataclass

from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple

import torch
from torch import Tensor, nn

from lhl.config.checks import check_nonnegative, check_positive_int
from lhl.engine.distributed import all_gather_cat, is_distributed, rank, world_size
from lhl.engine.hooks import Method
from lhl.methods.options import check_choices
from lhl.tasks import Task

if TYPE_CHECKING:
    from lhl.engine.hooks import RunContext


class Replay(NamedTuple):
    """A replay mini-batch: images ``[n,3,H,W]`` (float32) and, per task, the positions of its
    samples in ``images`` and their stored maps ``[k,C,H,W]`` (float32)."""

    images: Tensor
    groups: dict[str, tuple[Tensor, Tensor]]


def herding(features: Tensor, m: int) -> list[int]:
    """iCaRL's herding (Rebuffi et al., CVPR 2017, Alg. 4): ``m`` indices of ``features [N,D]``,
    in order, each minimising ‖μ − (Σ_selected φ + φ_i)/k‖ with μ the mean feature (no repeats)."""
    features = features.double()
    mean, total, chosen = features.mean(0), torch.zeros_like(features[0]), []
    for k in range(1, min(m, len(features)) + 1):
        distance = (mean - (total + features) / k).norm(dim=1)
        if chosen:
            distance[chosen] = float("inf")
        best = int(distance.argmin())
        chosen.append(best)
        total += features[best]
    return chosen


class ReplayBuffer:
    """Fixed-size buffer of (image, task, target map); see the module docstring.

    ``known_tasks`` (the run's ``{name: Task}``) says how a stored map flips; a map of a task not
    in it is only mirrored."""

    def __init__(self, size: int = 50, seed: int = 0, known_tasks: Mapping[str, Task] | None = None) -> None:
        self.size, self.known_tasks = int(size), dict(known_tasks or {})
        self.generator = torch.Generator().manual_seed(int(seed))
        self.images: list[Tensor] = []
        self.tasks: list[str] = []
        self.targets: list[Tensor] = []
        self.seen = 0  # items offered to reservoir() so far

    def __len__(self) -> int:
        return len(self.images)

    @staticmethod
    def _store(x: Tensor) -> Tensor:
        return x.detach().to("cpu", torch.float16).clone()

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.generator))

    def reservoir(self, images: Tensor, task: str, targets: Tensor) -> None:
        """Offer every item of a batch (``images [B,3,H,W]``, ``targets [B,C,H,W]``)."""
        self.place(self.reservoir_slots(len(images)), images, task, targets)

    def reservoir_slots(self, count: int) -> list[int | None]:
        """Offer ``count`` items: the slot each one takes (None: not kept), drawn as
        :meth:`reservoir` draws them (the counter and the generator advance); store the items
        with :meth:`place`. Only the draws, so processes can agree on them before moving images."""
        slots, filled = [], len(self.images)
        for _ in range(count):
            self.seen += 1
            slot = filled if filled < self.size else self._randint(self.seen)
            filled += filled < self.size
            slots.append(slot if slot < self.size else None)
        return slots

    def place(self, slots: list[int | None], images: Tensor, task: str, targets: Tensor) -> None:
        """Store item i in ``slots[i]`` (appended at the end, or replacing), in order; None: skip."""
        for slot, image, target in zip(slots, images, targets):
            if slot is None:
                continue
            if slot == len(self.images):
                self._append(image, task, target)
            else:
                self.images[slot], self.tasks[slot], self.targets[slot] = \
                    self._store(image), task, self._store(target)

    def _append(self, image: Tensor, task: str, target: Tensor) -> None:
        self.images.append(self._store(image))
        self.tasks.append(task)
        self.targets.append(self._store(target))

    def quotas(self, tasks: list[str]) -> dict[str, int]:
        """Even split of ``size`` over ``tasks`` (in order); the remainder goes to the earliest."""
        base, extra = divmod(self.size, len(tasks))
        return {task: base + (i < extra) for i, task in enumerate(tasks)}

    def select(self, tasks: list[str], features: Tensor, method: str = "herding") -> list[int]:
        """Shrink the stored tasks to their new quota and return the indices (into ``features
        [N,D]``, the new task's candidates) to store for ``tasks[-1]``; add them with :meth:`add`."""
        quota = self.quotas(tasks)
        keep, counts = [], dict.fromkeys(tasks, 0)
        for i, task in enumerate(self.tasks):  # each task's first items = its best (herding order)
            if counts[task] < quota[task]:
                keep.append(i)
                counts[task] += 1
        self.images = [self.images[i] for i in keep]
        self.tasks = [self.tasks[i] for i in keep]
        self.targets = [self.targets[i] for i in keep]
        m = min(quota[tasks[-1]], len(features))
        if method == "herding":
            return herding(features, m)
        return torch.randperm(len(features), generator=self.generator)[:m].tolist()

    def add(self, images: Tensor, task: str, targets: Tensor) -> None:
        """Append items (after :meth:`select` made room)."""
        for image, target in zip(images, targets):
            self._append(image, task, target)

    def sample(self, n: int, device: torch.device | str = "cpu", augment: bool = True) -> Replay | None:
        """Up to ``n`` distinct items, jointly flipped when ``augment``; None when empty."""
        if not self.images:
            return None
        order = torch.randperm(len(self.images), generator=self.generator)[:n].tolist()
        flips = torch.rand(len(order), generator=self.generator) < 0.5
        images, by_task = [], {}
        for position, (i, flip) in enumerate(zip(order, flips.tolist())):
            image, target, task = self.images[i].float(), self.targets[i].float(), self.tasks[i]
            if augment and flip:
                image = image.flip(-1)
                target = self.known_tasks[task].flip_output(target) if task in self.known_tasks else target.flip(-1)
            images.append(image)
            by_task.setdefault(task, []).append((position, target))
        groups = {task: (torch.tensor([p for p, _ in items], device=device),
                         torch.stack([t for _, t in items]).to(device)) for task, items in by_task.items()}
        return Replay(torch.stack(images).to(device), groups)

    def state_dict(self) -> dict[str, Any]:
        return {"images": list(self.images), "tasks": list(self.tasks), "targets": list(self.targets),
                "seen": self.seen, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.images, self.tasks, self.targets = list(state["images"]), list(state["tasks"]), list(state["targets"])
        self.seen = int(state["seen"])
        self.generator.set_state(state["generator"])


@dataclass
class ReplayOptions:
    """Hyperparameters every replay method has (DER, iCaRL); methods subclass to add their own."""

    weight: float = 0.01  # weight of the replay term (Table 6, NYUv2-R18: DER 0.01, iCaRL 0.01)
    buffer_size: int = 50  # images in total, over all tasks
    replay_batch: int = 8  # replayed images per step
    augment: bool = True  # joint horizontal flip of a replayed image and its stored map

    def __post_init__(self) -> None:
        """Ranges: ``weight`` finite ≥ 0 (0 turns replay off); ``buffer_size``, ``replay_batch`` ≥ 1.
        Subclasses' ``Literal`` fields (iCaRL's ``selection``) are checked here too."""
        check_choices(self)
        check_nonnegative(self.weight, "method.weight")
        check_positive_int(self.buffer_size, "method.buffer_size")
        check_positive_int(self.replay_batch, "method.replay_batch")


def replay_loss(model: nn.Module, replay: Replay, per_sample: Callable[[str, Tensor, Tensor], Tensor]) -> Tensor:
    """Mean over the replayed samples of ``per_sample(task, student [k,C,H,W], stored [k,C,H,W]) → [k]``,
    each sample through **its own** head (one encoder pass for the whole replay batch)."""
    features = model.encoder(replay.images)
    size = tuple(replay.images.shape[-2:])
    losses = []
    for task, (positions, targets) in replay.groups.items():
        student = model.decode([f[positions] for f in features], [task], size)[task].float()
        losses.append(per_sample(task, student, targets))
    return torch.cat(losses).mean()


class ReplayMethod(Method):
    """Base of DER and iCaRL: one :class:`ReplayBuffer` (``options.buffer_size``, seeded with the
    run's seed) checkpointed as the method's state, and a weighted replay term."""

    buffer: ReplayBuffer

    def setup(self, ctx: RunContext) -> None:
        self.buffer = ReplayBuffer(self.options.buffer_size, ctx.config.seed, ctx.tasks)

    def replay_term(self, ctx: RunContext, per_sample) -> dict[str, Tensor]:
        """``{name: weight · replay_loss}`` on a replay mini-batch, or ``{}`` while the buffer is empty."""
        replay = self.buffer.sample(self.options.replay_batch, ctx.device, self.options.augment)
        if replay is None:
            return {}
        return {self.name: self.options.weight * replay_loss(ctx.model, replay, per_sample)}

    def offer(self, images: Tensor, task: str, targets: Tensor) -> None:
        """Offer a training step's images and target maps to the reservoir (DER).

        Under DDP ``images``/``targets`` are this process's share of the global batch (its item i
        is the global batch's item i·world + rank, :class:`~lhl.engine.distributed.ShardedSampler`):
        every process draws the global batch's slots alike (:meth:`ReplayBuffer.reservoir_slots`),
        then only the kept items are gathered (fp16, as stored) and placed in the global order."""
        if not is_distributed():
            self.buffer.reservoir(images, task, targets)
            return
        world = world_size()
        slots = self.buffer.reservoir_slots(len(images) * world)
        kept = [p for p, slot in enumerate(slots) if slot is not None]
        if not kept:
            return
        by_rank = sorted(kept, key=lambda p: (p % world, p))  # the order all_gather_cat concatenates in
        mine = torch.tensor([p // world for p in by_rank if p % world == rank()], dtype=torch.long,
                            device=images.device)
        row = {p: i for i, p in enumerate(by_rank)}
        order = [row[p] for p in kept]
        gathered = [all_gather_cat(x.detach()[mine].to(torch.float16))[order] for x in (images, targets)]
        self.buffer.place([slots[p] for p in kept], gathered[0], task, gathered[1])

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict[str, Any], ctx: RunContext) -> None:
        self.buffer.load_state_dict(state["buffer"])
