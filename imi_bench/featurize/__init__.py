"""Per-unit activation statistics: IMI B.4, classical sparseness, SIS, parameter saliency, lesions, simulated 2AFC.

Example::

    from imi_bench.featurize import Featurizer
    from imi_bench.models import get_model
    from imi_bench.stimuli import bundled_photos
    table = Featurizer(get_model("mobilenet_v2"), ["imi_b4", "sparseness"]).run(units, bundled_photos())
"""

from .base import FAMILIES, CustomFamily, FeatureContext, FeatureFamily, HookFamily, register_family
from .dataset import featurize_release, resolve_dataset
from .featurizer import DEFAULT_FEATURES, Featurizer, as_source, load_families
from .sources import ImageSource, PoolSource, StimuliSource

__all__ = [
    "DEFAULT_FEATURES",
    "FAMILIES",
    "CustomFamily",
    "FeatureContext",
    "FeatureFamily",
    "Featurizer",
    "HookFamily",
    "ImageSource",
    "PoolSource",
    "StimuliSource",
    "as_source",
    "featurize_release",
    "load_families",
    "register_family",
    "resolve_dataset",
]
