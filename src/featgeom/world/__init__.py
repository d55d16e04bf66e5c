"""Synthetic worlds: SynthSAEBench-style feature dictionaries and a fast exact sampler."""

from featgeom.world.build import World, build_world
from featgeom.world.config import PRESETS, WorldConfig, preset
from featgeom.world.geometry import rho_mm
from featgeom.world.sampler import FastSampler, FeatureBatch

__all__ = ["PRESETS", "FastSampler", "FeatureBatch", "World", "WorldConfig", "build_world", "preset", "rho_mm"]
