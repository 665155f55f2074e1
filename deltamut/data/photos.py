"""The default image set: real photos that come with installed packages, so no data hub is needed.

The catalogue is explicit (a list, not a glob) because the packages also ship icons, text scans,
calibration boards and stereo duplicates that are no input for an image classifier, and because the
gathered names must stay stable: the packaged ground truth refers to them.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from deltamut.data import debian

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Photo:
    """One catalogued photo: `name` is its stem in the gathered folder, `source` is relative to `origin`."""

    name: str
    origin: str
    source: str


# origin -> (kind, locator): "pypi" locators are top-level packages, "debian" ones are (package, folder).
_PYPI_DIRS = {"skimage": ("skimage", "data"), "sklearn": ("sklearn", "datasets/images"),
              "matplotlib": ("matplotlib", "mpl-data/sample_data")}
_DEBIAN_DIRS = {"opencv": ("opencv-doc", "/usr/share/doc/opencv-doc/examples/data"),
                "mate": ("mate-backgrounds", "/usr/share/backgrounds/mate/nature")}

# Left out on purpose: greyscale texture/test patterns (brick, grass, gravel, chessboards), binary
# silhouettes (horse), microscopy crops (cell, microaneurysms), text scans, logos, clip art,
# calibration frames (left01..right14), synthetic shapes (pic1..6) and the second image of stereo pairs.
CATALOGUE: tuple[Photo, ...] = (
    Photo("skimage_astronaut", "skimage", "astronaut.png"),
    Photo("skimage_camera", "skimage", "camera.png"),
    Photo("skimage_chelsea", "skimage", "chelsea.png"),
    Photo("skimage_coffee", "skimage", "coffee.png"),
    Photo("skimage_coins", "skimage", "coins.png"),
    Photo("skimage_hubble_deep_field", "skimage", "hubble_deep_field.jpg"),
    Photo("skimage_motorcycle", "skimage", "motorcycle_left.png"),
    Photo("skimage_retina", "skimage", "retina.jpg"),
    Photo("skimage_rocket", "skimage", "rocket.jpg"),
    Photo("sklearn_china", "sklearn", "china.jpg"),
    Photo("sklearn_flower", "sklearn", "flower.jpg"),
    Photo("matplotlib_grace_hopper", "matplotlib", "grace_hopper.jpg"),
    Photo("opencv_aerial", "opencv", "aero1.jpg"),
    Photo("opencv_aloe", "opencv", "aloeL.jpg"),
    Photo("opencv_apple", "opencv", "apple.jpg"),
    Photo("opencv_baboon", "opencv", "baboon.jpg"),
    Photo("opencv_board", "opencv", "board.jpg"),
    Photo("opencv_books", "opencv", "left.jpg"),
    Photo("opencv_building", "opencv", "building.jpg"),
    Photo("opencv_butterfly", "opencv", "butterfly.jpg"),
    Photo("opencv_chicky", "opencv", "chicky_512.png"),
    Photo("opencv_fruits", "opencv", "fruits.jpg"),
    Photo("opencv_graffiti", "opencv", "graf1.png"),
    Photo("opencv_home", "opencv", "home.jpg"),
    Photo("opencv_leuven", "opencv", "leuvenA.jpg"),
    Photo("opencv_licenseplate_motion", "opencv", "licenseplate_motion.jpg"),
    Photo("opencv_messi", "opencv", "messi5.jpg"),
    Photo("opencv_notebook", "opencv", "ela_original.jpg"),
    Photo("opencv_orange", "opencv", "orange.jpg"),
    Photo("opencv_rubberwhale", "opencv", "rubberwhale1.png"),
    Photo("opencv_smarties", "opencv", "smarties.png"),
    Photo("opencv_squirrel", "opencv", "squirrel_cls.jpg"),
    Photo("opencv_starry_night", "opencv", "starry_night.jpg"),
    Photo("opencv_stuff", "opencv", "stuff.jpg"),
    Photo("mate_aqua", "mate", "Aqua.jpg"),
    Photo("mate_blinds", "mate", "Blinds.jpg"),
    Photo("mate_dune", "mate", "Dune.jpg"),
    Photo("mate_fresh_flower", "mate", "FreshFlower.jpg"),
    Photo("mate_garden", "mate", "Garden.jpg"),
    Photo("mate_green_meadow", "mate", "GreenMeadow.jpg"),
    Photo("mate_ladybird", "mate", "LadyBird.jpg"),
    Photo("mate_rain_drops", "mate", "RainDrops.jpg"),
    Photo("mate_storm", "mate", "Storm.jpg"),
    Photo("mate_two_wings", "mate", "TwoWings.jpg"),
    Photo("mate_wood", "mate", "Wood.jpg"),
    Photo("mate_yellow_flower", "mate", "YellowFlower.jpg"),
)

PYPI_ORIGINS = frozenset(_PYPI_DIRS)
DEBIAN_ORIGINS = frozenset(_DEBIAN_DIRS)


def gather_default_images(dest: Path, debian_cache: Path | None = None) -> list[Path]:
    """Copy the catalogued photos into `dest` as RGB JPEG/PNG and return their paths, sorted.

    Photos from Python packages always come; photos from Debian packages only when `debian_cache`
    is given (`debian.default_debian_cache()` is the usual choice) and apt can fetch them.
    A second call only checks sizes, so a workflow may call it on every run.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    folders = _source_folders(debian_cache)
    gathered = []
    for photo in CATALOGUE:
        folder = folders.get(photo.origin)
        if folder is None:
            continue
        src = folder / photo.source
        if not src.is_file():
            log.warning("catalogued photo %s missing at %s, skipping it", photo.name, src)
            continue
        gathered.append(_place(src, dest, photo.name))
    return sorted(gathered)


def _source_folders(debian_cache: Path | None) -> dict[str, Path]:
    folders = {}
    for origin, (package, sub) in _PYPI_DIRS.items():
        root = _package_dir(package)
        if root is None:
            log.warning("Python package %s not installed: skipping its photos", package)
        else:
            folders[origin] = root / sub
    if debian_cache is not None:
        for origin, (package, folder) in _DEBIAN_DIRS.items():
            root = debian.fetch_package_folder(Path(debian_cache), package, folder)
            if root is not None:
                folders[origin] = root / folder.lstrip("/")
    return folders


def _package_dir(package: str) -> Path | None:
    """Locate a package without importing it (importing scikit-learn costs seconds)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _place(src: Path, dest: Path, name: str) -> Path:
    """Byte-copy a photo that is already plain RGB JPEG/PNG (keeps provenance), else re-encode as PNG."""
    with Image.open(src) as im:
        plain = im.format in ("JPEG", "PNG") and im.mode == "RGB" and _orientation(im) in (None, 1)
        if plain:
            target = dest / (name + (".jpg" if im.format == "JPEG" else ".png"))
            if target.is_file() and target.stat().st_size == src.stat().st_size:
                return target
            tmp = target.with_name(target.name + ".tmp")
            shutil.copyfile(src, tmp)
        else:
            target = dest / (name + ".png")
            if target.is_file() and target.stat().st_size > 0:
                return target
            tmp = target.with_name(target.name + ".tmp")
            ImageOps.exif_transpose(im).convert("RGB").save(tmp, format="PNG")
    os.replace(tmp, target)
    return target


def _orientation(im: Image.Image) -> int | None:
    return im.getexif().get(0x0112)
