"""Similarity metrics between paired rows x (n_items, dim_x) and y (n_items, dim_y).

Row i of ``x`` is paired with row i of ``y`` (e.g. matched decoder rows of two SAEs); dims may
differ; both may be NumPy arrays, nested lists or torch tensors (detached to NumPy, so
``requires_grad`` is fine). Every metric returns a float where larger means more similar, and
raises a :class:`~featgeom.errors.FeatgeomError` subclass on bad input. All are invariant to isotropic
scaling of either side (SVCCA, CKA and debiased CKA, Procrustes, RSA with every RDM, mutual
k-NN), so each side is rescaled by a power of two before anything is squared: inputs of magnitude
1e-300 or 1e300 give the value of their unscaled copies (:func:`featgeom.similarity.base.rescaled`).
"""

from featgeom.similarity.cka import debiased_linear_cka, linear_cka
from featgeom.similarity.knn import mutual_knn
from featgeom.similarity.procrustes import procrustes
from featgeom.similarity.rsa import rsa
from featgeom.similarity.svcca import SVCCAResult, svcca, svcca_details

__all__ = ["SVCCAResult", "debiased_linear_cka", "linear_cka", "mutual_knn", "procrustes", "rsa", "svcca",
           "svcca_details"]
