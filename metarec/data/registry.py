"""Where each supported dataset comes from and how to recognise a genuine copy.

``DATASETS`` maps a dataset name to a :class:`DatasetInfo`: the publisher's URL, the archive's
size and SHA-256, and the archive members the loader needs, each with its own SHA-256. The
member paths are relative to the cache folder and equal the paths inside the official zip
(``ml-100k/u.data``), so a manually extracted archive is a valid cache.

Checksums are looked up at call time (``DATASETS[name]``), so tests can swap an entry for one
describing a small fixture with ``monkeypatch.setitem(DATASETS, name, info)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DATASETS", "DatasetInfo", "get_info"]


@dataclass(frozen=True)
class DatasetInfo:
    """Download and verification metadata of one dataset.

    Attributes
    ----------
    name : str
        Dataset name, also the folder the archive extracts to (``"ml-100k"``).
    url : str
        The publisher's download URL of the zip archive.
    archive_sha256 : str
        SHA-256 of the archive (hex).
    archive_bytes : int
        Size of the archive in bytes (for the progress bar and messages).
    members : dict of str to str
        Archive member path (``"ml-100k/u.data"``) -> SHA-256 of that file. Only these files
        are extracted and required.

    Examples
    --------
    >>> DATASETS["ml-100k"].archive_name
    'ml-100k.zip'
    >>> sorted(DATASETS["ml-1m"].members)[0]
    'ml-1m/movies.dat'
    """

    name: str
    url: str
    archive_sha256: str
    archive_bytes: int
    members: dict[str, str] = field(default_factory=dict)

    @property
    def archive_name(self) -> str:
        """File name of the archive (``"ml-100k.zip"``), also its name in the cache folder."""
        return self.url.rsplit("/", 1)[-1]


DATASETS: dict[str, DatasetInfo] = {
    "ml-100k": DatasetInfo(
        name="ml-100k",
        url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        archive_sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        archive_bytes=4924029,
        members={
            "ml-100k/u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
            "ml-100k/u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
            "ml-100k/u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
            "ml-100k/u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
            "ml-100k/u.occupation": (
                "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d"
            ),
        },
    ),
    "ml-1m": DatasetInfo(
        name="ml-1m",
        url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        archive_sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        archive_bytes=5917549,
        members={
            "ml-1m/ratings.dat": "506d64ca44484487c11dc2d9a28de5c54948213e6b96285e298afe28d6ea4e0f",
            "ml-1m/users.dat": "1dc3a95300cb19f7c10e027daf29b8cdf1d908dab65b5edfb45950aa389a10a3",
            "ml-1m/movies.dat": "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9",
        },
    ),
}


def get_info(name: str) -> DatasetInfo:
    """The registry entry of ``name``; a clear ``ValueError`` listing the choices otherwise.

    Examples
    --------
    >>> get_info("ml-100k").archive_bytes
    4924029
    """
    try:
        return DATASETS[name]
    except KeyError:
        choices = ", ".join(sorted(DATASETS))
        raise ValueError(f"Unknown dataset {name!r}; choose one of: {choices}.") from None
