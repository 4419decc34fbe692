"""Results that hold NaN or ±inf are refused before anything is written, with their cause."""

from __future__ import annotations

from torch import Tensor


def require_finite(values: Tensor, what: str, cause: str) -> Tensor:
    """``values`` (a batch, one item per row), or a FloatingPointError saying how many rows of
    ``what`` hold NaN/Inf and the likely ``cause``.

    Args:
        values: the results, (B, …).
        what: what they are, for the message ("samples", "restorations").
        cause: what to check or change, for the message.
    """
    finite = values.isfinite().flatten(1).all(dim=1) if values.ndim > 1 else values.isfinite()
    if bool(finite.all()):
        return values
    bad = int((~finite).sum())
    raise FloatingPointError(
        f"{bad} of {len(finite)} {what} hold NaN/Inf, so none was written: {cause}"
    )
