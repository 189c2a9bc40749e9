"""How the command writes counts and tables."""

from collections.abc import Sequence


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 message``, ``2 messages``: the count with its noun in the right number."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def format_table(rows: Sequence[dict[str, str]]) -> str:
    headers = list(rows[0])
    widths = [max(len(h), *(len(row[h]) for row in rows)) for h in headers]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += [
        "  ".join(row[h].ljust(w) for h, w in zip(headers, widths, strict=True)) for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def cut(text: str, width: int | None) -> str:
    if width is None or len(text) <= width:
        return text
    return text[:width] + "…"
