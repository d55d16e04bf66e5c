"""featgeom: synthetic benchmarking of universal feature geometry.

Pipeline stages, each a subpackage (dependencies point down this line):
world -> family -> sae -> match -> similarity -> stats -> metrics -> compare -> experiments -> report,
plus real (LLM activations and pretrained SAEs), store (artifacts and results) and cli.

Importing ``featgeom`` is cheap: SAELens (and its transformer stack) is imported only by the
functions that need it.
"""

from featgeom.errors import ArtifactError, ConfigError, DataError, FeatgeomError, ResourceError, ShapeError

__version__ = "0.1.0"

__all__ = ["ArtifactError", "ConfigError", "DataError", "FeatgeomError", "ResourceError", "ShapeError", "__version__"]
