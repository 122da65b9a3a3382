"""Finding the LRES/HRES pairs of a folder for batch evaluation.

Pairs
    In one folder, ``NAME_lres.tif`` + ``NAME_hres.tif`` (``_lres``/``_hres`` in
    any case; ``.tif``, ``.tiff``, ``.ome.tif`` or ``.zarr``, which may differ
    within a pair), or sub-folders ``lres/`` and ``hres/`` holding files with the
    same names. Pairs directly in the evaluated folder form the category ``"."``;
    each immediate sub-folder with pairs is a category of its own (deeper folders
    are not searched). Image files without a partner are skipped and listed in a
    :class:`~napari_resolve.errors.ResolveWarning`; other files (CSV, notes) are
    ignored, as are hidden ones.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from napari_resolve.errors import FileFormatError, InputError

__all__ = ["TOP_CATEGORY", "Pair", "find_pairs", "NAMING"]

#: Category of the pairs directly in the evaluated folder.
TOP_CATEGORY = "."

_IMAGE_SUFFIXES = (".ome.tiff", ".ome.tif", ".ome.zarr", ".tiff", ".tif", ".zarr")
_ROLE = re.compile(r"^(?P<name>.+)_(?P<role>lres|hres)$", re.IGNORECASE)
NAMING = (
    "Name each pair NAME_lres.tif and NAME_hres.tif (also .tiff or .zarr) in one folder, or put files with the "
    "same names in sub-folders lres/ and hres/; category sub-folders may hold either layout."
)


# ----------------------------------------------------------------------------- finding pairs


@dataclass(frozen=True)
class Pair:
    """One LRES/HRES pair found in the evaluated folder.

    Attributes
    ----------
    category : str
        Its sub-folder (``"."`` for the evaluated folder itself).
    name : str
        The pair's name (file name without ``_lres``/``_hres`` and suffix).
    lres, hres : Path
        The two files.
    """

    category: str
    name: str
    lres: Path
    hres: Path

    @property
    def label(self) -> str:
        """``category/name`` (just the name in the top category)."""
        return self.name if self.category == TOP_CATEGORY else f"{self.category}/{self.name}"


def _image_stem(path: Path) -> str | None:
    """The name without its image suffix, or None if ``path`` is not an image."""
    low = path.name.lower()
    for suffix in _IMAGE_SUFFIXES:
        if low.endswith(suffix) and len(low) > len(suffix):
            if suffix.endswith("zarr") != path.is_dir():
                return None  # a folder called x.tif, a file called x.zarr
            return path.name[: -len(suffix)]
    return None


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _scan(folder: Path, category: str) -> tuple[list[Pair], list[Path]]:
    """Pairs and unpaired image files of one category folder."""
    found: dict[str, dict[str, Path]] = {}  # name -> role -> file
    unpaired: list[Path] = []

    def add(name: str, role: str, path: Path) -> None:
        roles = found.setdefault(name, {})
        if role in roles:
            raise InputError(
                f"Two {role.upper()} files for the pair {name!r} in {folder}: {roles[role].name} and "
                f"{path.relative_to(folder)}. Keep one of them."
            )
        roles[role] = path

    for entry in _visible(folder):
        stem = _image_stem(entry)
        if stem is None:
            continue
        m = _ROLE.match(stem)
        if m:
            add(m["name"], m["role"].lower(), entry)
        else:
            unpaired.append(entry)
    subs = {p.name.lower(): p for p in _visible(folder) if p.is_dir() and _image_stem(p) is None}
    for role in ("lres", "hres"):
        if role in subs:
            for entry in _visible(subs[role]):
                stem = _image_stem(entry)
                if stem is not None:
                    add(stem, role, entry)
    pairs = []
    for name, roles in sorted(found.items()):
        if len(roles) == 2:
            pairs.append(Pair(category, name, roles["lres"], roles["hres"]))
        else:
            unpaired.extend(roles.values())
    return pairs, unpaired


def find_pairs(pairs_dir: str | os.PathLike) -> tuple[list[Pair], list[Path]]:
    """Find the LRES/HRES pairs of a folder and its category sub-folders.

    Parameters
    ----------
    pairs_dir : path-like
        The folder (see the module docstring for the layouts).

    Returns
    -------
    pairs : list of Pair
        Sorted by category (``"."`` first) and name.
    unpaired : list of Path
        Image files without a partner.

    Raises
    ------
    FileFormatError
        If ``pairs_dir`` is not a folder.
    InputError
        If no pair is found (the message gives the naming), or a pair has two
        files of one kind.
    """
    root = Path(pairs_dir)
    if not root.is_dir():
        raise FileFormatError(f"{root} is not a folder. Give the folder that holds the LRES/HRES pairs.")
    pairs, unpaired = _scan(root, TOP_CATEGORY)
    for sub in _visible(root):
        if sub.is_dir() and _image_stem(sub) is None and sub.name.lower() not in ("lres", "hres"):
            p, u = _scan(sub, sub.name)
            pairs += p
            unpaired += u
    if not pairs:
        what = f" ({len(unpaired)} image file(s) without a partner)" if unpaired else ""
        raise InputError(f"No LRES/HRES pairs were found in {root}{what}. {NAMING}")
    return pairs, sorted(unpaired)
