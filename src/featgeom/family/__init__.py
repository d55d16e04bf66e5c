"""Families of related synthetic models with a known cross-model feature correspondence."""

from featgeom.family.config import FamilyConfig, VariantSpec
from featgeom.family.family import Member, PairedBatch, SyntheticModelFamily, build_family
from featgeom.family.io import load, save

__all__ = ["FamilyConfig", "Member", "PairedBatch", "SyntheticModelFamily", "VariantSpec", "build_family",
           "load", "save"]
