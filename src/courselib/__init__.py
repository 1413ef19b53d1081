"""courselib: the helpers behind every chapter and lab of the course.

Modules, one job each: :mod:`~courselib.data` (Fashion-MNIST, splits, loaders,
augmentation), :mod:`~courselib.train` (fit/evaluate), :mod:`~courselib.probes`
(per-layer statistics), :mod:`~courselib.plots` (figures), :mod:`~courselib.widgets`
(interactive figures with a static fallback), :mod:`~courselib.utils` (seeding,
device, parameter counts).
"""
from .data import CLASS_NAMES, load_fashion_mnist, make_loaders
from .train import History, evaluate, fit
from .utils import count_parameters, get_device, seed_everything

__version__ = "0.1.0"
__all__ = ["CLASS_NAMES", "load_fashion_mnist", "make_loaders", "History", "evaluate", "fit",
           "count_parameters", "get_device", "seed_everything"]
