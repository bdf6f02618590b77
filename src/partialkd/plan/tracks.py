"""The five tracks, one `Track` record each: what the checks of params.yaml, the workflow's rules
and the report know of a track, in one place (DESIGN.md; NOTES §3-§4)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Track:
    """One track. `name` is its params.yaml section and its folder under results/."""
    name: str
    title: str  # the report's heading
    dataset: str  # in messages
    num_classes: int | None  # None: set in params.yaml (the synthetic track)
    networks: str  # the kind of its networks: "mlp", "vision", "imagenet" (torchvision's) or "lstm"
    recipe: str = "recipe"  # the schema definition ($defs) of its teachers' training recipe
    score: str = "acc"  # of its tables, claims and grid-point selection (reporting.summary SCORES)
    data_file: str = "data.pt"  # its prepared dataset, under results/<name>/data/
    train_images: int | None = None  # in the published training split, where `data.valid_size` holds some out
    trainer: str = "train_images"  # the `python -m partialkd.<trainer>` step that trains its networks
    # Whether its students train as stacked MLPs (`partialkd.train`; one stack per pair, teacher
    # seed and seed) instead of one `trainer` network per grid point.
    stacked_students: bool = False
    # The modules that read its trained networks back, imported inside functions
    # (training.read_runs): code inputs of the steps that read its runs (plan.code_dependencies).
    network_code: tuple[str, ...] = ()

    @property
    def per_network(self) -> bool:
        """Whether its students are named by (teacher, student architecture), each trained as one
        network or one stack per pair: the real-data tracks, whose claims, analyses and diagnoses
        run through one set of `{track}` rules (workflow/rules/analyses.smk, report.smk)."""
        return self.name != SYNTHETIC

    @property
    def architectures(self) -> tuple[str, ...]:
        """The architectures its networks may have (none listed for the synthetic MLPs, which
        params.yaml sizes). Imported here, not at the top: the report reads the tracks without
        loading torch."""
        from partialkd.models import lstm, vision

        known = {"vision": vision.ARCHITECTURES, "imagenet": vision.IMAGENET_ARCHITECTURES, "lstm": lstm.ARCHITECTURES}
        return known.get(self.networks, ())

    @property
    def data(self) -> str:
        return f"results/{self.name}/data/{self.data_file}"


SYNTHETIC = "synthetic"
TRACKS: dict[str, Track] = {track.name: track for track in (
    Track(SYNTHETIC, "Synthetic study (NOTES §3)", "the synthetic data", None, "mlp", trainer="train",
          stacked_students=True),
    Track("cifar100", "CIFAR-100 (NOTES §4)", "CIFAR-100", 100, "vision", train_images=50_000,
          network_code=("training.images",)),
    Track("fashion_mnist", "Fashion-MNIST (NOTES §4)", "Fashion-MNIST", 10, "vision", train_images=60_000,
          stacked_students=True, network_code=("training.images",)),
    Track("ptb", "Penn Treebank (NOTES §4)", "Penn Treebank", 10000, "lstm", recipe="lm_recipe",
          score="ppl", trainer="train_lm", network_code=("training.lm",)),
    Track("imagenet", "ImageNet (NOTES §4)", "ImageNet", 1000, "imagenet", data_file="index.pt",
          trainer="train_imagenet", network_code=("training.images", "data.imagenet")),
)}
NETWORK_TRACKS = tuple(name for name, track in TRACKS.items() if track.per_network)
