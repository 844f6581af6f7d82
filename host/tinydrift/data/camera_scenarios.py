"""Camera drift scenarios and unseen leaf populations for the drift benchmark: the image
models' counterpart of `tinydrift.data.scenarios`, with the same Scenario interface.

- a *leaf population* is a fresh sample of the procedural leaves (`tinydrift.data.leaves`)
  of another seed, optionally only the leaves whose recorded attributes fall in a range
  inside the generator's (one background, one leaf shape, dim light): a device that sees
  one greenhouse. These are the controls the monitor must stay quiet on;
- a *camera transform* changes a population's pixels the way a deployed camera differs from
  the one that took the training images, at a severity: a smudged lens (blur of a radius),
  a lower-resolution sensor (down then up again), a colour cast, exposure, sensor noise,
  JPEG artefacts, and the faults: a dead camera (black frames) and a stuck one (the same
  frame over and over, a stream-level hold);
- concept drift: a new diagnostic sign (small pale spots) appears on the healthy leaves of
  some plants, chosen by a recorded attribute, and those leaves are now labelled diseased.
  The sign is a few pixels on a fraction of the inferences, so the inputs barely move:
  only label feedback (ERROR_RATE) can see the labels move.

Every transform is (uint8 images [N, H, W, 3], rng, severity) -> uint8 images.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass

import numpy as np

from tinydrift.data.imageset import ImageSet
from tinydrift.errors import TinydriftError
from tinydrift.data.labels import PLANT_LABELS
from tinydrift.data.scenarios import Scenario, dropouts


@dataclass(frozen=True)
class LeafPopulation:
    """Procedural leaves of one seed offset; `where` keeps only the leaves whose attributes
    match: (attribute, allowed values) for a text attribute, (attribute, (low, high)) for a
    number. Inside the generator's ranges, so a model trained on them meets no new input."""

    name: str
    seed_offset: int = 0
    where: tuple = ()
    note: str = ""

    def matches(self, spec) -> bool:
        for attribute, allowed in self.where:
            value = getattr(spec, attribute)
            if isinstance(value, str):
                if value not in allowed:
                    return False
            elif not allowed[0] <= value <= allowed[1]:
                return False
        return True


def draw_population(population: LeafPopulation, images_per_class: int, seed: int, workers: int = 2) -> ImageSet:
    """images_per_class leaves of each class from the population, drawn from fresh plants.
    The leaves are planned first (cheap) and only the matching ones are rendered."""
    from tinydrift.data.leaves import PlantConfig, domain_columns, plan_split, render_leaves

    split = f"bench-{population.name}"
    oversample = 1
    while True:
        need = images_per_class * oversample
        config = PlantConfig(seed=seed + population.seed_offset, images_per_class={split: need})
        specs = [s for s in plan_split(config, split) if population.matches(s)]
        counts = np.bincount([s.label for s in specs], minlength=len(PLANT_LABELS))
        if counts.min() >= images_per_class:
            break
        if oversample >= 64:
            raise TinydriftError(f"leaf population {population.name}: its selection {population.where} keeps "
                                 f"{counts.min()} leaves of some class out of {need}; widen its ranges")
        oversample *= 2
    kept, taken = [], np.zeros(len(PLANT_LABELS), int)
    for s in specs:
        if taken[s.label] < images_per_class:
            kept.append(s)
            taken[s.label] += 1
    images = render_leaves(kept, config.size, workers)
    return ImageSet(images=images, labels=np.array([s.label for s in kept], dtype=np.int16),
                    label_names=PLANT_LABELS, domain=domain_columns(kept, split))


# -- the populations ------------------------------------------------------------------------

DEPLOYMENT = LeafPopulation("deployment", note="the generator's whole range, plants the model never saw")
CONTROLS = (
    LeafPopulation("other_seed", seed_offset=1000, note="another seed's plants, the whole range"),
    LeafPopulation("bench_background", where=(("background", ("bench",)),), note="a lab bench behind every leaf"),
    LeafPopulation("soil_background", where=(("background", ("soil",)),), note="leaves on soil only"),
    LeafPopulation("lobed_leaves", where=(("shape", ("lobed",)),), note="one leaf shape only"),
    LeafPopulation("dim_light", where=(("brightness", (0.65, 0.85)),), note="the dim end of training's lighting"),
    LeafPopulation("side_light", where=(("light_strength", (0.3, 0.5)),), note="strong directional light"),
    LeafPopulation("close_up", where=(("length", (0.8, 0.95)),), note="leaves filling the frame"),
    LeafPopulation("warm_white_balance", where=(("wb_red", (1.05, 1.15)), ("wb_blue", (0.85, 0.95))),
                   note="the warm end of training's white balance"),
)


# -- camera transforms ------------------------------------------------------------------------

def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def smudge(images, rng, sigma):
    """A smudged lens: a Gaussian blur of `sigma` pixels in each colour plane, so every edge
    and spot softens while the colours stay."""
    from scipy.ndimage import gaussian_filter

    return _to_uint8(gaussian_filter(images.astype(np.float32), (0, sigma, sigma, 0), mode="nearest"))


def smudged(images: ImageSet, sigma: float) -> ImageSet:
    """The same images through a smudged lens (`smudge`), labels and attributes kept."""
    return ImageSet(images=smudge(images.images, None, sigma), labels=images.labels,
                    label_names=images.label_names, domain=dict(images.domain))


def low_resolution(images, rng, factor):
    """A sensor `factor` times coarser: each image shrunk by area averaging, then enlarged
    bilinearly back to the model's input, as a driver that scales up would."""
    from PIL import Image

    size = images.shape[1]
    small = max(1, round(size / factor))
    out = np.empty_like(images)
    for i, image in enumerate(images):
        low = Image.fromarray(image).resize((small, small), Image.Resampling.BOX)
        out[i] = np.asarray(low.resize((size, size), Image.Resampling.BILINEAR))
    return out


def colour_cast(images, rng, gains):
    """A white balance off by per-channel gains (red, green, blue)."""
    return _to_uint8(images.astype(np.float32) * np.asarray(gains, np.float32))


def exposure(images, rng, stops):
    """Exposure off by `stops` (2^stops times the light), saturating at white."""
    return _to_uint8(images.astype(np.float32) * 2.0 ** stops)


def sensor_noise(images, rng, sigma):
    """Gaussian read noise of `sigma` levels (of 255) per value."""
    return _to_uint8(images.astype(np.float32) + rng.normal(0.0, sigma, images.shape))


def jpeg(images, rng, quality):
    """JPEG compression at `quality` (1-95) and back: blocking and ringing."""
    from PIL import Image

    out = np.empty_like(images)
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out[i] = np.asarray(decoded.convert("RGB"))
    return out


def dead(images, rng, _):
    """A dead camera: black frames."""
    return np.zeros_like(images)


def unchanged(images, rng, _):
    return images


def chain(images, rng, steps):
    """Transforms one after another: `steps` is ((name, severity), ...), e.g. a cheaper
    camera's coarser sensor, then its noise, then its JPEG encoder."""
    for name, severity in steps:
        images = TRANSFORMS[name](images, rng, severity)
    return images


# The severities `tinydrift data drift --severity` takes per transform (low, high, what):
# outside them a transform fails (a JPEG quality past 100, a negative noise) or leaves the
# images as they were (a blur of 0, a factor of 1).
SEVERITY_RANGES = {
    "smudge": (0.1, 10.0, "a blur of 0.1 to 10 pixels"),
    "low_resolution": (1.1, 24.0, "a sensor 1.1 to 24 times coarser"),
    "exposure": (-8.0, 8.0, "an exposure of -8 to 8 stops"),
    "sensor_noise": (0.5, 128.0, "a noise of 0.5 to 128 levels"),
    "jpeg": (1, 100, "a JPEG quality of 1 to 100"),
    "blackouts": (0.01, 1.0, "a share of 0.01 to 1 of the frames"),
}

TRANSFORMS = {
    "smudge": smudge, "low_resolution": low_resolution, "colour_cast": colour_cast, "exposure": exposure,
    "sensor_noise": sensor_noise, "jpeg": jpeg, "dead": dead, "blackouts": dropouts, "stuck": unchanged, "chain": chain,
}


# -- the new diagnostic sign (concept drift) -------------------------------------------------

PALE_SPOT_COLOUR = np.array([222.0, 232.0, 196.0])


def pale_spots(images: np.ndarray, domain: dict, rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` small pale spots (about 1.5 px across) on each leaf's blade near its midrib,
    placed from the leaf's recorded pose (centre, rotation, length, foreshortening)."""
    n, size = images.shape[0], images.shape[1]
    out = images.astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    for i in range(n):
        th = np.radians(float(domain["rotation_deg"][i]))
        length = float(domain["length"][i])
        squash = float(domain["foreshortening"][i]) * float(domain["aspect"][i])
        amount = np.zeros((size, size), np.float32)
        for _ in range(int(count)):
            u, v = rng.uniform(-0.6, 0.6), rng.uniform(-0.4, 0.4)
            dx = length * (np.cos(th) * u - np.sin(th) * squash * v)
            dy = length * (np.sin(th) * u + np.cos(th) * squash * v)
            px = (float(domain["centre_x"][i]) + dx + 1) / 2 * size
            py = (float(domain["centre_y"][i]) + dy + 1) / 2 * size
            amount = np.maximum(amount, np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / 0.8))
        out[i] = out[i] * (1 - 0.85 * amount[..., None]) + PALE_SPOT_COLOUR * 0.85 * amount[..., None]
    return _to_uint8(out)


@dataclass(frozen=True)
class NewSign:
    """Concept drift: leaves of `label_from` whose attribute lies in `where` (as in
    LeafPopulation) get `spots` pale spots and are labelled `label_to` from now on."""

    where: tuple
    spots: int = 6
    label_from: str = "healthy"
    label_to: str = "leaf_spot"


@dataclass(frozen=True)
class CameraScenario(Scenario):
    """A Scenario on leaf images: a population, a camera transform at a severity, a hold of
    one frame (`hold`: a stuck camera) or a new diagnostic sign (concept drift)."""

    population: LeafPopulation = DEPLOYMENT
    new_sign: NewSign | None = None

    def apply(self, images: ImageSet, seed: int) -> ImageSet:
        """The drifted version of a population's images."""
        rng = np.random.default_rng([seed, zlib.crc32(self.name.encode())])
        pixels = images.images if self.transform is None else TRANSFORMS[self.transform](images.images, rng, self.severity)
        labels = images.labels.copy()
        if self.new_sign is not None:
            sign = self.new_sign
            chosen = selected(images, sign.where) & (images.labels == PLANT_LABELS.index(sign.label_from))
            pixels = pixels.copy()
            pixels[chosen] = pale_spots(pixels[chosen], {k: v[chosen] for k, v in images.domain.items()}, rng, sign.spots)
            labels[chosen] = PLANT_LABELS.index(sign.label_to)
        return ImageSet(images=pixels, labels=labels, label_names=images.label_names, domain=dict(images.domain))


def selected(images: ImageSet, where: tuple) -> np.ndarray:
    """bool [N]: the images whose recorded attributes match `where` (LeafPopulation's form)."""
    keep = np.ones(len(images), bool)
    for attribute, allowed in where:
        column = images.domain[attribute]
        if column.dtype.kind in "US":
            keep &= np.isin(column, list(allowed))
        else:
            keep &= (column >= allowed[0]) & (column <= allowed[1])
    return keep


SCENARIOS = (
    # the camera differs from the training one: reported as DATA_DRIFT whatever it costs
    CameraScenario("lens_smudge_1px", "upstream", "DATA_DRIFT", transform="smudge", severity=1.0),
    CameraScenario("lens_smudge_2px", "upstream", "DATA_DRIFT", transform="smudge", severity=2.0),
    CameraScenario("lens_smudge_3px", "upstream", "DATA_DRIFT", transform="smudge", severity=3.0),
    CameraScenario("lens_smudge_2px_gradual", "upstream", "DATA_DRIFT", transform="smudge", severity=2.0, gradual=300),
    CameraScenario("low_resolution_x2", "upstream", "DATA_DRIFT", transform="low_resolution", severity=2.0),
    CameraScenario("low_resolution_x3", "upstream", "DATA_DRIFT", transform="low_resolution", severity=3.0),
    CameraScenario("warm_cast", "upstream", "DATA_DRIFT", transform="colour_cast", severity=(1.3, 1.0, 0.75)),
    CameraScenario("cool_white_balance", "upstream", "DATA_DRIFT", transform="colour_cast", severity=(0.75, 1.0, 1.3)),
    CameraScenario("underexposed_1stop", "upstream", "DATA_DRIFT", transform="exposure", severity=-1.0),
    CameraScenario("overexposed_1stop", "upstream", "DATA_DRIFT", transform="exposure", severity=1.0),
    CameraScenario("sensor_noise_12", "upstream", "DATA_DRIFT", transform="sensor_noise", severity=12.0),
    CameraScenario("sensor_noise_25", "upstream", "DATA_DRIFT", transform="sensor_noise", severity=25.0),
    CameraScenario("jpeg_q25", "upstream", "DATA_DRIFT", transform="jpeg", severity=25),
    CameraScenario("jpeg_q8", "upstream", "DATA_DRIFT", transform="jpeg", severity=8),
    CameraScenario("cheap_camera", "upstream", "DATA_DRIFT", transform="chain",
                   severity=(("low_resolution", 1.5), ("sensor_noise", 6.0), ("jpeg", 50))),
    # the camera fails: sensor health on each frame (td_sensor_image_update) sees a flat frame
    # and a repeated one
    CameraScenario("dead_camera", "camera_fault", "SENSOR_FAULT", transform="dead"),
    # black one frame in five, in runs far short of the 10 that are a fault
    CameraScenario("blinking_camera_20", "camera_fault", "SENSOR_FAULT", transform="blackouts", severity=0.2),
    CameraScenario("stuck_camera", "camera_fault", "SENSOR_FAULT", transform="stuck", hold=True),
    # concept drift: pale spots on the healthy leaves of the smoother half of the plants now mean leaf_spot
    CameraScenario("pale_spots_now_leaf_spot", "concept", "ERROR_RATE",
                   new_sign=NewSign(where=(("texture", (0.03, 0.075)),))),
    # unseen populations inside the generator's range: no alarm is right
    *(CameraScenario(p.name, "control", None, population=p) for p in CONTROLS),
)
