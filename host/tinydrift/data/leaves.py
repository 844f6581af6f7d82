"""Procedural leaf images for the plant-disease model, deterministic from a seed.

No leaf photographs can be downloaded here, so leaves are drawn: an ellipse, ovate or lobed
outline with a midrib and angled secondary veins, leaf-to-leaf colour and texture, a
background (soil, out-of-focus foliage, a gradient, a plain lab bench as in PlantVillage),
lighting (direction, brightness, white balance), pose (rotation, scale, position, bend,
foreshortening) and sensor noise. A diseased leaf carries its sign at a severity in
(0, 1]: yellow chlorotic spots, brown necrotic patches with darker rims, wilting (curled,
drooping, dull) or mosaic mottling. Every image's parameters are recorded as its domain so
drift scenarios can select by them.

A *plant* fixes a leaf's shape, colour, venation and texture; its leaves vary the rest.
Plants belong to one split each (train / val / ref / test never share one): the held-out
splits show plants training never saw. `ref` and `test` are two samples of one deployment
population, as for the keyword set.

Leaves are drawn at twice the model's resolution and shrunk with the loader's own resize
(`fit_image`), so generated and loaded images are made alike.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import json
import os
import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from tinydrift.atomic import write_text
from tinydrift.data.imagefolder import fit_image
from tinydrift.data.imageset import IMAGE_SIZE, ImageSet
from tinydrift.data.labels import PLANT_LABELS, PLANT_SIGNS
from tinydrift.data.parallel import render_all
from tinydrift.data.sets import MANIFEST, split_paths

# Bump when the drawing changes, so cached sets are rebuilt.
GENERATOR_VERSION = 3
RENDER_SCALE = 2  # drawn at 2x, shrunk by area averaging: smooth edges and spots
SPLITS = ("train", "val", "ref", "test")
SHAPES = ("ellipse", "ovate", "lobed")
BACKGROUNDS = ("soil", "foliage", "gradient", "bench")
LEAVES_PER_PLANT = 8
# The weakest sign drawn: below it a disease is not yet visible at 48x48.
MIN_SEVERITY = 0.2


@dataclass(frozen=True)
class PlantConfig:
    """What `tinydrift data plant` builds; its hash names the cache."""

    seed: int = 0
    images_per_class: dict = field(default_factory=lambda: {"train": 1600, "val": 200, "ref": 300, "test": 300})
    size: int = IMAGE_SIZE
    severity: tuple = (MIN_SEVERITY, 1.0)

    def digest(self) -> str:
        blob = json.dumps({"v": GENERATOR_VERSION, **asdict(self)}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class LeafSpec:
    """Everything that decides one image; every field becomes a domain column."""

    label: int
    severity: float  # 0 for a healthy leaf
    plant: int  # the plant's id: its split and index hashed
    # the plant's (shared by its leaves)
    shape: str
    aspect: float  # half-width over half-length
    lobes: int
    hue: float
    saturation: float
    value: float
    veins: int  # secondary vein pairs
    texture: float
    # the leaf's pose in the frame
    length: float  # half-length, a fraction of the frame's half-size
    rotation_deg: float
    centre_x: float
    centre_y: float
    bend: float  # midrib curvature
    foreshortening: float  # 1: seen square-on
    # the scene
    background: str
    light_deg: float  # direction light comes from
    light_strength: float
    brightness: float
    wb_red: float  # white balance gains
    wb_blue: float
    noise: float  # sensor noise, standard deviation in [0, 1] units
    seed: int  # texture, spots, patches and noise


def _plant_traits(rng: np.random.Generator) -> dict:
    shape = str(rng.choice(SHAPES))
    return {
        "shape": shape,
        "aspect": float(rng.uniform(0.3, 0.6)),
        "lobes": int(rng.integers(3, 6)) if shape == "lobed" else 0,
        "hue": float(rng.uniform(0.22, 0.36)),  # yellow-green to blue-green
        "saturation": float(rng.uniform(0.45, 0.85)),
        "value": float(rng.uniform(0.35, 0.7)),
        "veins": int(rng.integers(4, 9)),
        "texture": float(rng.uniform(0.03, 0.12)),
    }


def plan_split(config: PlantConfig, split: str) -> list[LeafSpec]:
    """The split's leaves: images_per_class of each class, from plants of its own, shuffled."""
    per_class = config.images_per_class[split]
    rng = np.random.default_rng([config.seed, zlib.crc32(split.encode())])
    total = per_class * len(PLANT_LABELS)
    plants = [_plant_traits(rng) for _ in range(max(1, -(-total // LEAVES_PER_PLANT)))]
    plant_ids = [zlib.crc32(f"{config.seed}/{split}/{i}".encode()) & 0x7FFFFFFF for i in range(len(plants))]
    labels = np.repeat(np.arange(len(PLANT_LABELS)), per_class)
    owner = rng.permutation(total) % len(plants)  # each plant gets about LEAVES_PER_PLANT leaves
    specs = []
    for label, p in zip(labels, owner):
        severity = 0.0 if label == 0 else float(rng.uniform(*config.severity))
        specs.append(LeafSpec(
            label=int(label), severity=severity, plant=plant_ids[p], **plants[p],
            length=float(rng.uniform(0.6, 0.95)), rotation_deg=float(rng.uniform(0, 360)),
            centre_x=float(rng.uniform(-0.15, 0.15)), centre_y=float(rng.uniform(-0.15, 0.15)),
            bend=float(rng.uniform(-0.25, 0.25)), foreshortening=float(rng.uniform(0.7, 1.0)),
            background=str(rng.choice(BACKGROUNDS)), light_deg=float(rng.uniform(0, 360)),
            light_strength=float(rng.uniform(0.0, 0.5)), brightness=float(rng.uniform(0.65, 1.3)),
            wb_red=float(rng.uniform(0.85, 1.15)), wb_blue=float(rng.uniform(0.85, 1.15)),
            noise=float(rng.uniform(0.0, 0.03)), seed=int(rng.integers(2**31))))
    order = rng.permutation(len(specs))
    return [specs[i] for i in order]


# -- drawing ----------------------------------------------------------------------------------

def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, np.clip(s, 0, 1), np.clip(v, 0, 1)))


def _smooth_noise(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """Unit-variance noise with features about `sigma` pixels across."""
    from scipy.ndimage import gaussian_filter

    field_ = gaussian_filter(rng.standard_normal((n, n)), sigma, mode="wrap")
    return field_ / (field_.std() + 1e-9)


def _width_profile(spec: LeafSpec, u: np.ndarray) -> np.ndarray:
    """Half-width along the midrib (u: -1 at the base, 1 at the tip), at most `aspect`."""
    t = np.clip(u, -1, 1)
    if spec.shape == "ellipse":
        w = np.sqrt(1 - t**2)
    else:  # ovate: widest below the middle, a pointed tip
        w = (1 - t) ** 0.9 * (1 + t) ** 0.5 / 1.0886  # max of (1-t)^0.9 (1+t)^0.5 is 1.0886
        if spec.shape == "lobed":
            w = w * (1 - 0.28 * (0.5 - 0.5 * np.cos(spec.lobes * np.pi * (t + 1))))
    return spec.aspect * np.where(np.abs(u) <= 1, w, 0.0)


def _background(spec: LeafSpec, rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    n = x.shape[0]
    if spec.background == "soil":
        base = _hsv(rng.uniform(0.05, 0.11), rng.uniform(0.35, 0.65), rng.uniform(0.2, 0.45))
        grain = 0.12 * _smooth_noise(rng, n, 1.0) + 0.15 * _smooth_noise(rng, n, 6.0)
        img = base * (1 + grain)[..., None]
        for _ in range(int(rng.integers(3, 10))):  # pebbles
            cx, cy, r = rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.02, 0.07)
            pebble = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / r**2)[..., None]
            img = img * (1 - pebble) + _hsv(rng.uniform(0.05, 0.12), rng.uniform(0.05, 0.3), rng.uniform(0.45, 0.75)) * pebble
        return img
    if spec.background == "foliage":  # other leaves, out of focus
        img = np.broadcast_to(_hsv(rng.uniform(0.2, 0.4), rng.uniform(0.4, 0.8), rng.uniform(0.1, 0.3)), (n, n, 3)).copy()
        for _ in range(int(rng.integers(4, 9))):
            cx, cy = rng.uniform(-1.2, 1.2, 2)
            a, b, th = rng.uniform(0.2, 0.6), rng.uniform(0.08, 0.25), rng.uniform(0, np.pi)
            xr = (x - cx) * np.cos(th) + (y - cy) * np.sin(th)
            yr = -(x - cx) * np.sin(th) + (y - cy) * np.cos(th)
            blob = ((xr / a) ** 2 + (yr / b) ** 2 < 1)[..., None]
            img = np.where(blob, _hsv(rng.uniform(0.2, 0.4), rng.uniform(0.4, 0.9), rng.uniform(0.15, 0.5)), img)
        return gaussian_filter(img, (rng.uniform(2, 5), rng.uniform(2, 5), 0))
    if spec.background == "gradient":
        th = rng.uniform(0, 2 * np.pi)
        t = (np.clip(x * np.cos(th) + y * np.sin(th), -1, 1) * 0.5 + 0.5)[..., None]
        c0 = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.5), rng.uniform(0.2, 0.9))
        c1 = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.5), rng.uniform(0.2, 0.9))
        return c0 * (1 - t) + c1 * t
    # bench: a plain grey-white surface, slightly vignetted (PlantVillage's photographs)
    grey = rng.uniform(0.55, 0.9)
    vignette = 1 - rng.uniform(0.05, 0.25) * (x**2 + y**2) / 2
    return _hsv(rng.uniform(0, 1), rng.uniform(0, 0.08), grey) * vignette[..., None]


def _blend(img: np.ndarray, colour: np.ndarray, amount: np.ndarray) -> np.ndarray:
    a = np.clip(amount, 0, 1)[..., None]
    return img * (1 - a) + colour * a


def _leaf_colour(spec: LeafSpec, rng, u, v, half_width, n) -> np.ndarray:
    """The healthy leaf: base colour, texture, veins, a fold's shading at the midrib."""
    base = _hsv(spec.hue, spec.saturation, spec.value)
    texture = 1 + spec.texture * _smooth_noise(rng, n, 1.5) + 0.5 * spec.texture * _smooth_noise(rng, n, 8.0)
    img = base * texture[..., None]
    img = img * (1 - 0.08 * np.sign(v) * rng.uniform(0.3, 1.0))[..., None]  # one half faces the light less
    pale = _hsv(spec.hue - 0.04, spec.saturation * 0.5, min(1.0, spec.value * 1.45))
    midrib = np.clip(1 - np.abs(v) / 0.035, 0, 1) * (u > -1.1) * (u < 0.95)
    phase = (u - 0.9 * np.abs(v)) * spec.veins / 2
    secondary = np.clip(1 - np.abs(phase - np.round(phase)) / 0.07, 0, 1) * (np.abs(v) < 0.92 * half_width)
    img = _blend(img, pale, 0.8 * midrib + 0.45 * secondary)
    edge = np.clip(1 - (half_width - np.abs(v)) / 0.05, 0, 1)  # margins a little darker
    return img * (1 - 0.15 * edge)[..., None]


def _inside_points(rng, spec: LeafSpec, count: int, margin: float = 0.85) -> list[tuple[float, float]]:
    points = []
    for _ in range(count):
        u = rng.uniform(-0.9, 0.9)
        w = float(_width_profile(spec, np.array(u)))
        points.append((u, rng.uniform(-margin, margin) * w))
    return points


def _leaf_spot(img, spec: LeafSpec, rng, u, v):
    """Yellow chlorotic spots with soft halos; more and larger with severity."""
    s = spec.severity
    yellow = _hsv(rng.uniform(0.12, 0.17), rng.uniform(0.6, 0.9), rng.uniform(0.75, 0.95))
    amount = np.zeros_like(u)
    for cu, cv in _inside_points(rng, spec, int(round(4 + 26 * s))):
        r = rng.uniform(0.035, 0.07) * (0.8 + 0.6 * s)
        amount = np.maximum(amount, np.exp(-((u - cu) ** 2 + (v - cv) ** 2) / r**2))
    return _blend(img, yellow, (0.55 + 0.4 * s) * amount)


def _blight(img, spec: LeafSpec, rng, u, v):
    """Brown necrotic patches, irregular, each with a darker rim and a faint yellow halo."""
    s = spec.severity
    brown = _hsv(rng.uniform(0.06, 0.1), rng.uniform(0.55, 0.8), rng.uniform(0.3, 0.5))
    rim_colour = brown * 0.45
    halo_colour = _hsv(0.14, 0.7, 0.75)
    for cu, cv in _inside_points(rng, spec, int(round(1 + 4 * s)), margin=1.0):
        r = rng.uniform(0.1, 0.16) * (0.8 + 1.0 * s)  # at least ~3 px across at 48x48
        angle = np.arctan2(v - cv, u - cu)
        wobble = 1 + 0.25 * np.sin(3 * angle + rng.uniform(0, 6.3)) + 0.12 * np.sin(5 * angle + rng.uniform(0, 6.3))
        d = np.sqrt((u - cu) ** 2 + (v - cv) ** 2) / (r * wobble)
        img = _blend(img, halo_colour, 0.35 * np.clip((1.45 - d) / 0.45, 0, 1) * (d > 0.9))
        img = _blend(img, brown * (1 + 0.15 * rng.standard_normal()), np.clip((1.0 - d) / 0.1, 0, 1))
        img = _blend(img, rim_colour, np.clip(1 - np.abs(d - 0.93) / 0.12, 0, 1))
    return img


def _wilt_colour(img, spec: LeafSpec, rng, u, v, half_width):
    """A wilting leaf is dull and olive, yellowing and browning from the tip and margins."""
    s = 0.35 + 0.65 * spec.severity  # its colour turns before its shape does
    grey = img.mean(axis=-1, keepdims=True)
    img = img * (1 - 0.5 * s) + grey * (0.5 * s)  # desaturated
    img = img * (1 - 0.25 * s)
    dry = _hsv(rng.uniform(0.08, 0.13), 0.6, 0.5)
    edge = np.clip(1 - (half_width - np.abs(v)) / (0.08 + 0.15 * s), 0, 1)
    tip = np.clip((u - (0.7 - 0.6 * s)) / 0.4, 0, 1)
    img = _blend(img, dry, (0.3 + 0.5 * s) * np.maximum(edge, tip))
    curl_shadow = np.clip(1 - np.abs(v - half_width * 0.8) / 0.06, 0, 1) * (v > 0)  # the rolled edge
    return img * (1 - 0.4 * s * curl_shadow)[..., None]


def _mosaic(img, spec: LeafSpec, rng, u, v, n):
    """Light yellow-green and dark green patches: a mottled mosaic."""
    s = spec.severity
    mottle = _smooth_noise(rng, n, rng.uniform(2.5, 4.5))
    light = _hsv(spec.hue - 0.07, spec.saturation * 0.7, min(1.0, spec.value * 1.6))
    dark = _hsv(spec.hue + 0.02, spec.saturation, spec.value * 0.6)
    contrast = 0.45 + 0.45 * s
    img = _blend(img, light, contrast * np.clip(mottle * 1.5, 0, 1))
    return _blend(img, dark, contrast * 0.7 * np.clip(-mottle * 1.5, 0, 1))


def render_leaf(spec: LeafSpec, size: int = IMAGE_SIZE) -> np.ndarray:
    """One uint8 [size, size, 3] image of the leaf the spec describes."""
    rng = np.random.default_rng(spec.seed)
    n = size * RENDER_SCALE
    y, x = (np.mgrid[0:n, 0:n] + 0.5) / n * 2 - 1  # the frame in [-1, 1], y down
    background = _background(spec, rng, x, y)

    disease = PLANT_LABELS[spec.label]
    wilt = spec.severity if disease == "wilt" else 0.0
    length = spec.length * (1 - 0.25 * wilt)  # a drooping leaf is seen shorter
    th = np.radians(spec.rotation_deg)
    dx, dy = x - spec.centre_x, y - spec.centre_y
    u = (np.cos(th) * dx + np.sin(th) * dy) / length
    v = (-np.sin(th) * dx + np.cos(th) * dy) / (length * spec.foreshortening)
    v = v - (spec.bend + 0.6 * wilt * np.sign(spec.bend + 1e-9)) * (u + 1) ** 2 / 4  # the midrib bends
    half_width = _width_profile(spec, u)
    if disease == "mosaic":  # puckered, wavy margins
        half_width = half_width * (1 + 0.08 * spec.severity * np.sin(11 * u + rng.uniform(0, 6.3)))
    if wilt:  # one margin rolls under, the blade narrows
        half_width = half_width * (1 - 0.25 * wilt) * np.where(v > 0, 1 - 0.45 * wilt, 1.0)

    pixel = 2.0 / n / length  # one drawn pixel in leaf units: the outline's anti-aliasing width
    blade = np.clip(0.5 - (np.abs(v) - half_width) / pixel, 0, 1) * (half_width > 0)
    stem = np.clip(0.5 - (np.abs(v) - 0.025) / pixel, 0, 1) * (u < -0.95) * (u > -1.35)
    mask = np.maximum(blade, stem)

    leaf = _leaf_colour(spec, rng, u, v, half_width, n)
    if disease == "leaf_spot":
        leaf = _leaf_spot(leaf, spec, rng, u, v)
    elif disease == "blight":
        leaf = _blight(leaf, spec, rng, u, v)
    elif disease == "wilt":
        leaf = _wilt_colour(leaf, spec, rng, u, v, half_width)
    elif disease == "mosaic":
        leaf = _mosaic(leaf, spec, rng, u, v, n)

    # The leaf's shadow on the background, away from the light.
    from scipy.ndimage import gaussian_filter, shift

    light = np.radians(spec.light_deg)
    offset = (-np.sin(light) * 0.04 * n, -np.cos(light) * 0.04 * n)
    shadow = gaussian_filter(shift(mask, offset, order=1, mode="constant"), 2.5)
    background = background * (1 - 0.35 * spec.light_strength * 2 * shadow)[..., None]

    img = background * (1 - mask[..., None]) + leaf * mask[..., None]
    shading = 1 + spec.light_strength * (np.cos(light) * x + np.sin(light) * y) * 0.5
    img = img * (spec.brightness * shading)[..., None] * np.array([spec.wb_red, 1.0, spec.wb_blue])
    img = img + rng.normal(0, spec.noise, img.shape)
    drawn = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    return fit_image(drawn, size)


def _render_chunk(specs: list[LeafSpec], size: int) -> np.ndarray:
    return np.stack([render_leaf(s, size) for s in specs])


def render_leaves(specs: list[LeafSpec], size: int = IMAGE_SIZE, workers: int = 1, progress=None) -> np.ndarray:
    out = render_all(functools.partial(_render_chunk, size=size), specs, workers, progress)
    return np.concatenate(out) if out else np.zeros((0, size, size, 3), np.uint8)


def domain_columns(specs: list[LeafSpec], split: str) -> dict[str, np.ndarray]:
    cols = {}
    for f in fields(LeafSpec):
        if f.name == "label":
            continue
        values = [getattr(s, f.name) for s in specs]
        kind = {"float": np.float32, "int": np.int64}.get(f.type, None)
        cols[f.name] = np.array(values, dtype=kind) if kind else np.array(values)
    cols["disease"] = np.array([PLANT_LABELS[s.label] for s in specs])
    cols["split"] = np.array([split] * len(specs))
    cols["group"] = cols["plant"].astype(np.int64)  # calibration resamples whole plants
    return cols


def generate_split(config: PlantConfig, split: str, workers: int = 1, progress=None) -> ImageSet:
    specs = plan_split(config, split)
    images = render_leaves(specs, config.size, workers, progress)
    return ImageSet(images=images, labels=np.array([s.label for s in specs], dtype=np.int16),
                    label_names=PLANT_LABELS, domain=domain_columns(specs, split))


def build_plant(out_dir: str | Path, config: PlantConfig = PlantConfig(), workers: int | None = None,
                progress_factory=None) -> dict[str, Path]:
    """Build (or reuse from cache) every split into `out_dir/<split>.npz`; return their paths.

    `progress_factory(description, total)` returns a callable advanced by image counts.
    """
    out_dir = Path(out_dir)
    digest = config.digest()
    paths, built = split_paths(out_dir, SPLITS, digest)
    if built:
        return paths
    workers = workers or os.cpu_count() or 1
    counts = {}
    for split in SPLITS:
        total = config.images_per_class[split] * len(PLANT_LABELS)
        advance = progress_factory(f"drawing {split}", total) if progress_factory else None
        images = generate_split(config, split, workers, advance)
        images.save(paths[split])
        counts[split] = len(images)
    manifest = {
        "kind": "plant-procedural",
        "config_digest": digest,
        "config": asdict(config),
        "generator_version": GENERATOR_VERSION,
        "labels": list(PLANT_LABELS),
        "signs": PLANT_SIGNS,
        "images": counts,
        "image_shape": [config.size, config.size, 3],
        "attributes": [f.name for f in fields(LeafSpec) if f.name != "label"],
        "shapes": list(SHAPES),
        "backgrounds": list(BACKGROUNDS),
    }
    write_text(out_dir / MANIFEST, json.dumps(manifest, indent=2))
    return paths
