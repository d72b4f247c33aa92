"""Change detectors behind one interface: `detect(image_a, image_b) -> ChangeResult`."""

from tamms.models.change.base import ChangeDetector, ChangeResult

__all__ = ["ChangeDetector", "ChangeResult"]
