"""The core: plain PyTorch, importable without ComfyUI.

One subpackage per task, each holding its inference code (the package itself), and beside it what
makes its data and what scores it:

* `inpaint` (fill holes) + `inpaint.evaluate`;
* `enhance` (restore, auto-enhance) + `enhance.degrade` (the degradations) + `enhance.evaluate`;
* `edit` (masked instructions) + `edit.pairs` (the synthetic pairs) + `edit.evaluate`;
* `translate` (pix2pix / CycleGAN) + `translate.pairs` (synthetic pairs) + `translate.evaluate`;
* `stylize` (AdaIN, fast neural style, one-style networks).

Shared by all of them: `layout` (the tensor contract and ComfyUI <-> core conversions), `masks`
(generators and mask maths), `ranges` (parameter bounds), `metrics`, `runtime` (device/dtype for
inference). Models and files: `architecture` (what an architecture is, `SizeRule`, `Accepts`),
`archs/` (one file per family), `registry` (the list), `weights` (our safetensors format and the
`LoadedModel` descriptor), `checkpoint` (reading files, foreign `.pth`), `pretrained` (the VGG-16 loss
network). `train/` is the training engine, one module per task, the data loaders and the photo
dataset builder; `weights/` holds the shipped starter weights.
"""
