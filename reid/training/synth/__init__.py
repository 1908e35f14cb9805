"""Procedural leopard coats and camera-trap renders (training data, test images, demos).

Split by what it draws: config (sizes, RenderConfig), paint (drawing helpers), geometry (body
proportions), coat (the rosette pattern on the body map), pose (camera and body warp), scene
(background and occluders), camera (shading, light, blur, noise, JPEG: the composite),
render (the entry points), dataset (images + labels.csv + contact sheet, `reid synth`),
season (a synthetic camera-trap season).

Every individual is an integer seed. Its coat is generated once per (seed, side) as a texture
in *body coordinates*: a 1024x512 lateral map of the whole animal, head at the image side it
faces (left flank: head on the left; right flank: mirrored), torso in the middle, legs below,
tail hanging at the rear. Left and right flanks carry different rosette layouts (as on real
leopards) but share the individual's ground colour and body proportions; the head and legs
carry small solid spots, the belly is pale with blotches, the tail is ringed toward a dark tip.
``side="front"`` gives a 512x640 frontal head map (viewpoint "front") for head views.

A photo is a render of that map through a camera (scale from near to far, roll, perspective
from yaw/pitch), a smooth non-rigid body warp (random sinusoidal displacement, spine bend, leg
swing, head nod, tail swing), shading from a height field, a procedural background (sand,
gravel, steppe, chalk cliffs, boulders, scrub), cast and contact shadows, grass and branch
occluders, day colour casts or night infrared (grey, flash fall-off, vignette, overexposed
centre, noise), motion and focus blur, camera-trap info banners and JPEG artefacts.

Determinism: all randomness comes from ``numpy.random.Generator`` objects (never the global
state); the same (seed, side, rng state, config) gives identical pixels with the same NumPy and
OpenCV builds. Nothing depends on the magnitude of a seed: seeds only feed
``numpy.random.SeedSequence``, so training (e.g. seeds >= 100000) and evaluation (0..9999)
ranges are simply disjoint individuals.

Command line: ``python -m reid.training.synth --individuals 20 --per-individual 8 --out DIR`` (also
``reid synth ...``) writes DIR/images/*.jpg, DIR/labels.csv (EVAL.md columns) and
DIR/contact_sheet.png.

Speed (``python benchmarks/bench_synth.py`` on this project's 2-core dev machine, one OpenCV
thread, i.e. per core, 256x256 output, best of 3 rounds): about 80 renders/s per core with the
coat cached (~12.5 ms a render, day or night; bursts the same per frame), against the target
of 30/s. Building a new coat costs ~80 ms per flank (~85 ms for a face map), so a fresh
individual with both flanks is ~0.16 s. The cache keeps the 32 most recent (seed, side) maps
(~6 MB each with mip levels): a trainer should draw several renders of an individual in a row
(P x K batches do), or the coat cost dominates.

Training note: never mirror renders as augmentation; a mirrored left flank is not the right
flank of that individual, it is a pattern no leopard has.
"""

from reid.training.synth.coat import flank_texture
from reid.training.synth.config import FACE_H, FACE_W, MAP_H, MAP_W, SIDES, VIEWS, RenderConfig, identity_name
from reid.training.synth.dataset import LABEL_COLUMNS, contact_sheet, main, write_dataset
from reid.training.synth.render import render, render_burst

__all__ = [
    "FACE_H",
    "FACE_W",
    "LABEL_COLUMNS",
    "MAP_H",
    "MAP_W",
    "SIDES",
    "VIEWS",
    "RenderConfig",
    "contact_sheet",
    "flank_texture",
    "identity_name",
    "main",
    "render",
    "render_burst",
    "write_dataset",
]
