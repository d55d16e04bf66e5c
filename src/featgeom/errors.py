"""Exception types raised by featgeom.

Every error a user can provoke with bad input is a subclass of :class:`FeatgeomError`, carries a
one-line message that names the offending field or argument, and never leaks a traceback from
deep inside NumPy or PyTorch.
"""


class FeatgeomError(Exception):
    """Base class of every featgeom error."""


class ConfigError(FeatgeomError, ValueError):
    """A configuration value is missing, unknown, out of range or unreachable."""


class ShapeError(FeatgeomError, ValueError):
    """Arrays have incompatible shapes (e.g. mismatched row counts or dimensions)."""


class DataError(FeatgeomError, ValueError):
    """Input data is unusable: NaN/inf values, empty inputs, dead or constant columns."""


class ArtifactError(FeatgeomError):
    """A stored artifact is missing, corrupted, truncated or does not match its id."""


class ResourceError(FeatgeomError):
    """The machine cannot provide what a run needs: device memory, a device, a cluster."""
