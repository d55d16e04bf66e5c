"""Similarity metrics between paired rows x (n_items, dim_x) and y (n_items, dim_y).

Row i of ``x`` is paired with row i of ``y`` (e.g. matched decoder rows of two SAEs); dims may
differ; both may be NumPy arrays, nested lists or torch tensors (detached to NumPy, so
``requires_grad`` is fine). Every metric returns a float where larger means more similar, and
raises a :class:`~featgeom.errors.FeatgeomError` subclass on bad input. All are invariant to isotropic
scaling of either side (SVCCA, CKA and debiased CKA, Procrustes, RSA with every RDM, mutual
k-NN), so each side is rescaled by a power of two before anything is squared: inputs of magnitude
1e-300 or 1e300 give the value of their unscaled copies (:func:`featgeom.similarity.base.rescaled`).

:data:`SIMILARITY` (:mod:`featgeom.similarity.registry`) names every metric the nulls, ``compare`` and
the command line can reach by name; :func:`register_similarity` adds one.
"""

from featgeom.similarity.cka import debiased_linear_cka, linear_cka
from featgeom.similarity.knn import mutual_knn
from featgeom.similarity.procrustes import procrustes
from featgeom.similarity.registry import SIMILARITY, SimilarityMetric, register_similarity, similarity_metric
from featgeom.similarity.rsa import rsa
from featgeom.similarity.svcca import SVCCAResult, svcca, svcca_details

__all__ = ["SIMILARITY", "SVCCAResult", "SimilarityMetric", "debiased_linear_cka", "linear_cka", "mutual_knn",
           "procrustes", "register_similarity", "rsa", "similarity_metric", "svcca", "svcca_details"]
