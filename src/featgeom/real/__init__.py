"""``featgeom.real``: the universality pipeline on real language models and pretrained SAEs.

Models (hub id, local directory or an offline test model) are hooked at residual-stream layers;
both models read exactly the same token windows of one corpus (same tokenizer, refused
otherwise), special positions masked in both; activations stream to the content-addressed store;
pretrained SAEs load through SAELens (or our EleutherAI sparsify converter); every layer of A is
compared with every layer of B by :func:`featgeom.compare.compare_latents` with the valid null;
semantic subspaces, a side-by-side viewer and a superposition proxy complete the picture.
"""
