"""Musical keys as DJs write them: a ``Key`` (tonic pitch class and mode) with its name
("A minor"), short name ("Am"), Camelot ("8A") and Open Key ("1m") notations, parsed from
any of them as tags and users write them ("Am", "A min", "F#m", "Gb", "C major", "8A",
"1d", "A♭"), and the keys that mix with one (``compatible``: the same key, ±1 on the
Camelot wheel, the relative major or minor) with a distance on the wheel (``wheel_distance``)
for ordering.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import MusicSearchError

MAJOR, MINOR = "major", "minor"
# One spelling per pitch class and mode, as DJ software usually writes them.
MAJOR_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MINOR_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_NOTE_RE = re.compile(
    r"\s*([A-Ga-g])\s*(#|♯|b|♭|-flat|-sharp| flat| sharp)?\s*"
    r"(m|min|minor|-moll|moll|maj|major|-dur|dur|M)?\.?\s*",
)
_WHEEL_RE = re.compile(r"\s*0?(1[0-2]|[1-9])\s*([ABabDdMm])\s*")


@dataclass(frozen=True, order=True)
class Key:
    """A key: ``tonic`` the pitch class (0 = C ... 11 = B), ``mode`` "major" or "minor"."""

    tonic: int
    mode: str

    @property
    def name(self) -> str:
        """ "A minor", "C major", "F# minor": how the index stores it."""
        return f"{self.note} {self.mode}"

    @property
    def note(self) -> str:
        return (MINOR_NAMES if self.mode == MINOR else MAJOR_NAMES)[self.tonic]

    @property
    def short(self) -> str:
        """ "Am", "C", "F#m"."""
        return self.note + ("m" if self.mode == MINOR else "")

    @property
    def camelot_number(self) -> int:
        """1-12 on the Camelot wheel (C major and A minor are 8)."""
        major_tonic = self.tonic if self.mode == MAJOR else (self.tonic + 3) % 12
        return (major_tonic * 7 + 7) % 12 + 1

    @property
    def camelot(self) -> str:
        """ "8A" (A minor), "8B" (C major)."""
        return f"{self.camelot_number}{'A' if self.mode == MINOR else 'B'}"

    @property
    def open_key(self) -> str:
        """Open Key notation: "1m" (A minor), "1d" (C major)."""
        return f"{(self.camelot_number - 8) % 12 + 1}{'m' if self.mode == MINOR else 'd'}"

    @property
    def relative(self) -> Key:
        """The relative minor of a major key, or major of a minor key (same Camelot number)."""
        if self.mode == MAJOR:
            return Key((self.tonic + 9) % 12, MINOR)
        return Key((self.tonic + 3) % 12, MAJOR)

    def step(self, n: int) -> Key:
        """The key ``n`` steps round the Camelot wheel (a fifth up per step), same mode."""
        return Key((self.tonic + 7 * n) % 12, self.mode)

    def __str__(self) -> str:
        return self.name


ALL_KEYS = tuple(Key(t, m) for m in (MAJOR, MINOR) for t in range(12))


def from_camelot(number: int, letter: str) -> Key:
    """The key at Camelot ``number`` (1-12), ``letter`` "A" (minor) or "B" (major)."""
    major_tonic = ((number - 8) * 7) % 12
    if letter.upper() == "B":
        return Key(major_tonic, MAJOR)
    return Key((major_tonic + 9) % 12, MINOR)


def _accidental(text: str | None) -> int:
    if not text:
        return 0
    return 1 if text.strip().lstrip("-") in ("#", "♯", "sharp") else -1


def find_key(text: str | None) -> Key | None:
    """The key ``text`` names, or None when it names none (as read from a tag: "Am", "A min",
    "A minor", "F#m", "Gb", "Bbm", "C major", "Cmaj", "8A", "08A", "1m", "1d", "o" (off key):
    None). Case is ignored except that a lone "M" after the note means major."""
    if text is None:
        return None
    text = text.strip()
    wheel = _WHEEL_RE.fullmatch(text)
    if wheel:
        number, letter = int(wheel.group(1)), wheel.group(2).upper()
        if letter in ("A", "B"):
            return from_camelot(number, letter)
        camelot = (number + 6) % 12 + 1  # Open Key 1 is Camelot 8
        return from_camelot(camelot, "A" if letter == "M" else "B")
    note = _NOTE_RE.fullmatch(text)
    if not note:
        return None
    tonic = (_LETTERS[note.group(1).upper()] + _accidental(note.group(2))) % 12
    mode_text = note.group(3) or ""
    minor = mode_text != "M" and mode_text.lower().lstrip("-") in ("m", "min", "minor", "moll")
    return Key(tonic, MINOR if minor else MAJOR)


def parse_key(text: str) -> Key:
    """The key a user typed (see ``find_key``).

    Raises:
        MusicSearchError: ``text`` names no key.
    """
    key = find_key(text) if isinstance(text, str) else None
    if key is None:
        raise MusicSearchError(
            f"bad key {text!r}: use Camelot (8A), Open Key (1m) or a name (Am, A minor, F#, Bb major)"
        )
    return key


def compatible(key: Key) -> tuple[Key, ...]:
    """The keys that mix with ``key``: itself, ±1 on the Camelot wheel (same mode) and its
    relative major or minor, in that order."""
    return (key, key.step(1), key.step(-1), key.relative)


def wheel_distance(a: Key, b: Key) -> int:
    """Steps between two keys on the Camelot wheel: round the wheel, plus one to change
    between the minor (A) and major (B) rings: 0 same key, 1 compatible, up to 7."""
    around = abs(a.camelot_number - b.camelot_number) % 12
    return min(around, 12 - around) + (a.mode != b.mode)


def camelot(name: str | None) -> str | None:
    """The Camelot notation of a stored key name ("A minor" -> "8A"); None for None or no key."""
    key = find_key(name)
    return key.camelot if key else None
