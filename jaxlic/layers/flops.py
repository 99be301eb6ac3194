"""FLOP counts from XLA's own cost model.

Layer and model budgets in jaxlic ("FDRAM costs at most half of Cheng's attention block",
"post-processing costs at most a quarter of g_s") are stated in FLOPs as counted by XLA's
HLO cost analysis of the *compiled* computation, so that what we compare is what runs, after
fusion and algebraic simplification, rather than a hand-written formula that can drift from the
code. XLA counts a multiply-accumulate as 2 FLOPs and also counts element-wise work
(activations, bias adds, residual sums), so numbers are slightly above ``2 * MACs``.

Nothing is executed: parameters and inputs are only traced (``jax.eval_shape``) and compiled,
so counting a large model at a large resolution costs compile time only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax

__all__ = ["flops", "flops_of_fn"]


def _as_abstract(x: Any) -> Any:
    """Replaces arrays by ``ShapeDtypeStruct`` so that nothing is materialised."""
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), x)


def _flops_from_cost(cost: Any) -> float:
    # ``Compiled.cost_analysis()`` has returned a dict, a one-element list of dicts (one per
    # device program), or None, depending on the jax version and backend.
    if cost is None:
        raise RuntimeError("XLA cost analysis is not available on this backend")
    if isinstance(cost, (list, tuple)):
        return float(sum(_flops_from_cost(c) for c in cost))
    if isinstance(cost, Mapping):
        return float(cost.get("flops", 0.0))
    raise TypeError(f"unexpected cost_analysis() result: {type(cost).__name__}")


def flops_of_fn(fn: Callable[..., Any], *args: Any) -> float:
    """FLOPs of ``fn(*args)`` as counted by XLA after compilation.

    Args:
      fn: a jax-traceable function.
      *args: its arguments: arrays, pytrees of arrays, or ``jax.ShapeDtypeStruct``s.

    Returns:
      The ``"flops"`` entry of the compiled computation's cost analysis (summed over programs
      when there are several).
    """
    compiled = jax.jit(fn).lower(*_as_abstract(args)).compile()
    return _flops_from_cost(compiled.cost_analysis())


def flops(
    module: nn.Module,
    *inputs: Any,
    variables: Any = None,
    method: str | Callable[..., Any] | None = None,
    rngs: Any = None,
    **kwargs: Any,
) -> float:
    """FLOPs of ``module.apply(variables, *inputs)``.

    Args:
      module: a Flax linen module.
      *inputs: positional inputs (arrays or ``jax.ShapeDtypeStruct``s), e.g. a ``[B, H, W, C]``
        image.
      variables: the module's variables; when omitted they are only shape-inferred from
        ``module.init`` (never computed), which is enough for counting.
      method: optional method to count instead of ``__call__``.
      rngs: optional rngs for ``init``/``apply`` (e.g. ``{"noise": key}``); keys are not traced
        as arguments.
      **kwargs: static keyword arguments passed to ``apply`` (e.g. ``training=False``).

    Returns:
      XLA's FLOP count of the compiled forward pass.
    """
    if variables is None:
        init_rngs = {"params": jax.random.key(0)}
        if rngs is not None:
            init_rngs.update(rngs)
        variables = jax.eval_shape(
            lambda *a: module.init(init_rngs, *a, method=method, **kwargs), *_as_abstract(inputs)
        )

    def forward(v, *a):
        return module.apply(v, *a, method=method, rngs=rngs, **kwargs)

    return flops_of_fn(forward, variables, *inputs)
