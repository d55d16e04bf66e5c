"""Similarity metrics between paired rows x (n_items, dim_x) and y (n_items, dim_y).

Row i of ``x`` is paired with row i of ``y`` (e.g. matched decoder rows of two SAEs); dims may
differ. Every metric returns a float where larger means more similar, and raises a
:class:`~featgeom.errors.FeatgeomError` subclass on bad input.
"""

from featgeom.similarity.cka import linear_cka
from featgeom.similarity.procrustes import procrustes
from featgeom.similarity.rsa import rsa
from featgeom.similarity.svcca import SVCCAResult, svcca, svcca_details

__all__ = ["SVCCAResult", "linear_cka", "procrustes", "rsa", "svcca", "svcca_details"]
