"""Searches over spaces, for B problems at once: what energy minimisation and planning share.

A search minimises an objective ``f(params) -> (C * B,)`` whose candidates are laid out
``c * B + b`` (candidate ``c`` of problem ``b``), one tensor per named space:

================= ==============================================================================
``spaces``        :class:`Continuous` (real or box, any shape) and :class:`Discrete` (one-hot
                  choices, any shape); :func:`combinations` enumerates the discrete ones
``objective``     the :class:`Objective` protocol and :class:`Best`, the per-problem minimum kept
``gradient``      :func:`descend`: discrete spaces enumerated, continuous ones by Adam or L-BFGS
``sampling``      :func:`cem` (cross-entropy method) and :func:`sample` (random search)
================= ==============================================================================

A latent ``z`` and an action sequence ``Continuous((H, A), lo, hi)`` are searched alike.
"""
from .gradient import descend
from .objective import Best, Objective, Params
from .sampling import cem, sample
from .spaces import Continuous, Discrete, Space, combinations

__all__ = ["Best", "Continuous", "Discrete", "Objective", "Params", "Space", "cem", "combinations", "descend",
           "sample"]
