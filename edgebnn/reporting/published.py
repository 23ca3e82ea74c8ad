"""Published reference figures: latencies other people measured on their boards.

These are drawn beside edgebnn's own measurements in reports, always marked "published" and
never merged with measured points: they come from other hardware, other builds and other
inputs. Sources (papers.md section 5):

- Larq Compute Engine README, ``lce_benchmark_model`` with XNNPACK on and random input,
  Raspberry Pi 4B (Cortex-A72 at 1.5 GHz), 1 and 4 threads; top-1 from Larq Zoo (ImageNet).
- Bi-Real Net on a Pixel 1, 1 thread (LCE's published comparison); top-1 from Larq Zoo.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class PublishedPoint:
    """One published latency of one model on one board.

    Attributes:
        model: edgebnn's registry name of the model.
        label: the name the source uses.
        device: the board the source measured on.
        threads: the thread count.
        latency_ms: the published latency in milliseconds.
        top1: the published ImageNet top-1 accuracy in percent.
        source: where the figures come from.
    """

    model: str
    label: str
    device: str
    threads: int
    latency_ms: float
    top1: float
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


PI4 = "Raspberry Pi 4B"
LCE_README = "LCE README (lce_benchmark_model, XNNPACK); top-1 from Larq Zoo"

POINTS: tuple[PublishedPoint, ...] = (
    PublishedPoint("quicknet-small", "QuickNetSmall", PI4, 1, 27.7, 59.4, LCE_README),
    PublishedPoint("quicknet-small", "QuickNetSmall", PI4, 4, 12.1, 59.4, LCE_README),
    PublishedPoint("quicknet", "QuickNet", PI4, 1, 45.0, 63.3, LCE_README),
    PublishedPoint("quicknet", "QuickNet", PI4, 4, 20.8, 63.3, LCE_README),
    PublishedPoint("quicknet-large", "QuickNetLarge", PI4, 1, 77.0, 66.9, LCE_README),
    PublishedPoint("quicknet-large", "QuickNetLarge", PI4, 4, 31.7, 66.9, LCE_README),
    PublishedPoint("birealnet", "Bi-Real Net", "Pixel 1", 1, 41.6, 57.5, "LCE publication; top-1 from Larq Zoo"),
)


def published_points(*, models: set[str] | None = None) -> list[PublishedPoint]:
    """The published points, optionally only those of ``models`` (registry names)."""
    return [p for p in POINTS if models is None or p.model in models]
