"""Kubernetes ``resource.Quantity`` as the HPA uses it: parsed exactly, read as milli-units.

An HPA target such as ``averageValue: "500m"`` reaches the controller as
``Quantity.MilliValue()``, which rounds up, so ``"0.0001"`` is worth 1 milli and
never 0. Tolerances are read with ``AsApproximateFloat64()``. Both are ported
here with exact integer arithmetic, so a target means what it means on a cluster.

Port of ``k8s.io/apimachinery/pkg/api/resource`` (``quantity.go``, ``amount.go``,
``suffix.go``); see :mod:`rlscale.hpa` for the commit read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

# suffix -> (base, exponent): the value is number * base**exponent.
_SUFFIXES: dict[str, tuple[int, int]] = {
    "": (10, 0),
    "n": (10, -9),
    "u": (10, -6),
    "m": (10, -3),
    "k": (10, 3),
    "M": (10, 6),
    "G": (10, 9),
    "T": (10, 12),
    "P": (10, 15),
    "E": (10, 18),
    "Ki": (2, 10),
    "Mi": (2, 20),
    "Gi": (2, 30),
    "Ti": (2, 40),
    "Pi": (2, 50),
    "Ei": (2, 60),
}
_EXPONENT = re.compile(r"[eE][+-]?\d+")
# Sign, numerator, optional ".denominator", then a suffix: letters from upstream's suffix
# alphabet, an optional sign and digits (as parseQuantityString scans it).
_QUANTITY = re.compile(r"([+-]?)(\d*)(?:\.(\d*))?([eEinumkKMGTP]*[+-]?\d*)")
_MAX_INT64_DIGITS = 18  # maxInt64Factors: decimal digits that always fit an int64
_NANO = -9


class QuantityError(ValueError):
    """A string that Kubernetes would refuse as a quantity."""


@dataclass(frozen=True, slots=True)
class Quantity:
    """An exact quantity: ``unscaled * 10**scale``, as upstream stores it after parsing.

    Upstream keeps small values as an ``int64Amount`` (value, scale) and the rest as an
    arbitrary-precision decimal rounded up to nano units; both are this pair here.
    """

    unscaled: int
    scale: int

    @property
    def exact(self) -> Fraction:
        return self.unscaled * Fraction(10) ** self.scale

    def sign(self) -> int:
        return (self.unscaled > 0) - (self.unscaled < 0)

    def milli_value(self) -> int:
        """``MilliValue()``: the value in milli-units, a fraction rounded away from zero.

        For the positive values an HPA accepts this is the ceiling: ``"0.0001"`` -> 1.
        """
        milli = self.exact * 1000
        magnitude = math.ceil(abs(milli))
        return magnitude if milli >= 0 else -magnitude

    def as_approximate_float64(self) -> float:
        """``AsApproximateFloat64()``: ``float(unscaled) * 10**scale`` computed as upstream does.

        Go's ``math.Pow(10, -k)`` is ``1 / 10**k``, exact for the ``k`` of real tolerances.
        """
        base = float(self.unscaled)
        if self.scale == 0:
            return base
        if self.scale > 0:
            return base * math.pow(10.0, self.scale)
        return base * (1.0 / math.pow(10.0, -self.scale))


def parse_quantity(raw: str | int | float) -> Quantity:
    """Parse a quantity as ``resource.ParseQuantity`` does; YAML ints and floats are read as their text.

    Kubernetes reads a JSON number in a quantity field from its literal text, so
    ``averageValue: 0.95`` is the quantity ``"0.95"``.
    """
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise QuantityError(f"{raw!r} is not a quantity (want a string such as '500m', '3' or '1.5')")
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise QuantityError(f"{raw!r} is not a quantity")
        text = repr(raw)
    else:
        text = str(raw)
    if not text:
        raise QuantityError("an empty string is not a quantity")
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise QuantityError(f"{text!r} is not a quantity: want <number><suffix>, e.g. '500m', '3', '1.5', '2k', '1Gi'")
    sign, num, denom, suffix = match.group(1), match.group(2), match.group(3) or "", match.group(4)
    if suffix in _SUFFIXES:
        base, exponent = _SUFFIXES[suffix]
    elif _EXPONENT.fullmatch(suffix):
        base, exponent = 10, int(suffix[1:])
    else:
        raise QuantityError(
            f"{text!r} has an unknown suffix {suffix!r}: want one of n, u, m, k, M, G, T, P, E, "
            "Ki, Mi, Gi, Ti, Pi, Ei, or an exponent like e3"
        )
    num = num.lstrip("0") or "0"
    negative = sign == "-"
    digits = int(num + denom)

    if base == 10:
        scale = exponent - len(denom)
        if len(num) + len(denom) <= _MAX_INT64_DIGITS and scale >= _NANO:
            return Quantity(-digits if negative else digits, scale)  # upstream's int64Amount fast path
        return _round_up_to_nano(Fraction(digits) * Fraction(10) ** scale, negative)
    value = Fraction(digits, 10 ** len(denom)) * 2**exponent
    if value.denominator == 1:
        return Quantity(-value.numerator if negative else value.numerator, 0)
    return _round_up_to_nano(value, negative)


def _round_up_to_nano(magnitude: Fraction, negative: bool) -> Quantity:
    """Upstream's slow path: round the magnitude up to whole nano units ("if you ask for some, you get some")."""
    nanos = math.ceil(magnitude * 10**9)
    unscaled, scale = nanos, _NANO
    while unscaled and unscaled % 10 == 0 and scale < 0:
        unscaled //= 10
        scale += 1
    return Quantity(-unscaled if negative else unscaled, scale)


def parse_quantity_milli(raw: str | int | float) -> int:
    """The milli-value of a quantity: ``"500m"`` -> 500, ``"3"`` -> 3000, ``"1Gi"`` -> 1073741824000."""
    return parse_quantity(raw).milli_value()
