"""`python -m nodes.train ...`: the training entry point (run from the pack root, outside ComfyUI).

It reaches the core by absolute name (`models.train`) and imports nothing from ComfyUI.
"""
