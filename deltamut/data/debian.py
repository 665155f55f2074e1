"""Photos shipped inside Debian packages, unpacked without installing the package.

`apt-get download` plus `dpkg-deb --fsys-tarfile` needs neither root-owned install state nor the
package's dependencies, and extracting only the photo folder keeps the cache small (opencv-doc is
~100 MB of mostly HTML). Everything here is optional: a machine without apt just gets fewer photos.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

log = logging.getLogger(__name__)

_MARKER = ".extracted"


def default_debian_cache() -> Path:
    """Where unpacked Debian photos live between runs unless the caller says otherwise."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deltamut" / "debian"


def extracted_root(cache: Path, package: str) -> Path:
    """The file-system root of one unpacked package (paths below it mirror `/`)."""
    return cache / package


def is_extracted(cache: Path, package: str) -> bool:
    return (extracted_root(cache, package) / _MARKER).is_file()


def fetch_package_folder(cache: Path, package: str, folder: str) -> Path | None:
    """Unpack `folder` (an absolute path inside the package) of `package` into the cache.

    Returns the package root, or None (with a warning) when apt is missing or the download fails:
    Debian photos are a bonus, never a reason to stop.
    """
    root = extracted_root(cache, package)
    if is_extracted(cache, package):
        return root
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        log.warning("apt-get/dpkg-deb not available: skipping photos from Debian package %s", package)
        return None
    download = cache / "downloads"
    download.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["apt-get", "download", package], cwd=download, check=True,
                       capture_output=True, text=True, timeout=600)
    except (subprocess.SubprocessError, OSError) as err:
        detail = getattr(err, "stderr", "") or err
        log.warning("apt-get download %s failed, skipping its photos: %s", package, str(detail).strip())
        return None
    debs = sorted(download.glob(f"{package}_*.deb"))
    if not debs:
        log.warning("apt-get download %s left no .deb in %s, skipping its photos", package, download)
        return None
    try:
        _extract_folder(debs[-1], folder, root)
    except (subprocess.SubprocessError, OSError, tarfile.TarError) as err:
        log.warning("could not unpack %s, skipping its photos: %s", debs[-1].name, err)
        return None
    (root / _MARKER).write_text(debs[-1].name + "\n")
    for deb in debs:
        deb.unlink()
    return root


def _extract_folder(deb: Path, folder: str, root: Path) -> None:
    """Stream the package's data archive and keep only members below `folder`."""
    prefix = "./" + folder.strip("/") + "/"
    root.mkdir(parents=True, exist_ok=True)
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|*") as tar:
            for member in tar:
                if member.isfile() and member.name.startswith(prefix):
                    tar.extract(member, root, filter="data")
        while proc.stdout.read(1 << 20):  # drain the tar padding so dpkg-deb exits cleanly
            pass
        if proc.wait() != 0:
            raise subprocess.CalledProcessError(proc.returncode, "dpkg-deb --fsys-tarfile")
