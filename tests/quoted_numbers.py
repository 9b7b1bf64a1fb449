"""Find the numbers a text quotes and the numbers its evidence prints, and match them at the
precision quoted: 0.99 matches a printed 0.990 or 0.9903, 4e-12 matches 4.3e-12, 95% matches
0.951 or 95.1. Used by test_quoted_numbers.py; `python tests/quoted_numbers.py` lists every
quoted number that has no match."""
import math
import re
from decimal import Decimal

# A number as prose or LaTeX writes it: 0.99, 1.5e-7, 4\times 10^{-12}, 4 × 10⁻¹², 95%.
SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
NUMBER = re.compile(
    r"(?<![\w.^_])(?P<mant>\d+(?:\.\d+)?)"
    r"(?:(?:[eE](?P<exp>[-+−]?\d+))"
    r"|(?:\s*(?:\\times|×|\\cdot)\s*10\s*(?:\^\s*\{?\s*(?P<exp2>[-−]?\s*\d+)\s*\}?|(?P<exp3>[⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+))))?"
    r"(?P<pct>\s*(?:\\?%))?")
POWER_OF_TEN = re.compile(r"(?<![\w.])10\s*(?:\^\s*\{?\s*(?P<exp>[-−]?\s*\d+)\s*\}?|(?P<sup>[⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+))")


THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")      # 193,500 -> 193500


def quoted_numbers(text):
    """Yield (as written, value, half of its last digit's unit) for each number in text."""
    text = THOUSANDS.sub("", text)
    taken = []
    for m in POWER_OF_TEN.finditer(text):          # a bare 10^{-7}: exactly that power
        if m.start() > 0 and re.search(r"(\\times|×|\\cdot)\s*$", text[:m.start()]):
            continue
        exp = int((m.group("exp") or m.group("sup").translate(SUPERSCRIPT)).replace("−", "-").replace(" ", ""))
        taken.append((m.start(), m.end()))
        yield m.group(0), 10.0 ** exp, 0.5 * 10.0 ** exp
    for m in NUMBER.finditer(text):
        if any(a <= m.start() < b for a, b in taken):
            continue
        mant = m.group("mant")
        exp = m.group("exp") or m.group("exp2") or (m.group("exp3") or "").translate(SUPERSCRIPT)
        exp = int(exp.replace("−", "-").replace(" ", "")) if exp else 0
        decimals = len(mant.split(".")[1]) if "." in mant else 0
        if decimals == 0 and not exp and len(mant.rstrip("0")) < len(mant):
            decimals = -(len(mant) - len(mant.rstrip("0")))   # 650: known to the tens
        value = float(mant) * 10.0 ** exp
        half = 0.5 * 10.0 ** (exp - decimals)
        if m.group("pct"):
            value, half = value / 100, half / 100
        yield m.group(0), value, half


EVIDENCE_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def printed_numbers(text):
    """Every number in evidence text (outputs, code), as floats; a percentage also as its fraction."""
    values = []
    text = THOUSANDS.sub("", text)
    for m in EVIDENCE_NUMBER.finditer(text):
        v = float(m.group(0))
        values.append(v)
        if text[m.end():m.end() + 1] == "%":
            values.append(v / 100)
    return values


def matches(value, half, printed):
    """Does any printed number round to value at its quoted precision?"""
    slack = half * (1 + 1e-9)
    return any(abs(p - value) <= slack for p in printed)
