"""Experiments: declarative experiment runs (specs, jobs, the resumable runner) over
:func:`featgeom.compare.compare`."""
