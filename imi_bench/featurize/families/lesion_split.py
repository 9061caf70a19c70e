"""``torch.fx`` prefix/suffix split of a network at a layer's tensor, for running many lesions cheaply.

The prefix (run once per image set) returns the layer's tensor and every other tensor the rest of the
network needs (e.g. a skip connection); the suffix takes the (lesioned) tensor plus that frontier and
returns the model's output. Layers whose module does not run exactly once are not split (None).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import fx, nn

from ...models.adapter import LayerInfo, ModelAdapter

__all__ = ["Split", "split_at", "trace_model"]

# --------------------------------------------------------------------------- prefix / suffix split
class _Tracer(fx.Tracer):
    """Traces through every ancestor of a layer module; records each module call's output and first input."""

    def __init__(self, modules: Sequence[str], forced_leaves: set[str]) -> None:
        leaves: tuple[type, ...] = ()
        autowrap: tuple[Any, ...] = ()
        try:
            from timm.layers import _fx as timm_fx

            leaves = tuple(timm_fx.get_notrace_modules())
            autowrap = tuple(f for f in timm_fx.get_notrace_functions() if callable(f))
        except ImportError:  # pragma: no cover - timm is a dependency
            pass
        super().__init__(autowrap_functions=autowrap)
        self.notrace, self.forced = leaves, forced_leaves
        self.ancestors = {".".join(m.split(".")[:i]) for m in modules for i in range(len(m.split(".")))}
        self.calls: dict[str, list[tuple[fx.Node | None, fx.Node | None]]] = {}

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        """Forced leaves; never an ancestor of a layer; else timm's no-trace modules and torch's rule."""
        if qualname in self.forced:
            return True
        if qualname in self.ancestors:
            return False
        return isinstance(m, self.notrace) or super().is_leaf_module(m, qualname)

    def call_module(self, m: nn.Module, forward: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Trace the call and remember its output node (if created by this call) and first input node."""
        before = len(self.graph.nodes)
        out = super().call_module(m, forward, args, kwargs)
        new = set(list(self.graph.nodes)[before:])
        node = out.node if isinstance(out, fx.Proxy) and out.node in new else None
        first = args[0].node if args and isinstance(args[0], fx.Proxy) else None
        self.calls.setdefault(self.path_of_module(m), []).append((node, first))
        return out


def trace_model(adapter: ModelAdapter) -> tuple[fx.Graph, dict[str, list[tuple[fx.Node | None, fx.Node | None]]]]:
    """Trace ``adapter.model`` once, keeping every layer of interest visible (raises if untraceable)."""
    layers = adapter.layers()
    tracer = _Tracer([la.module for la in layers], {la.module for la in layers if la.site == "input"})
    graph = tracer.trace(adapter.model)
    return graph, tracer.calls


@dataclass
class Split:
    """``prefix(x) → (layer tensor, *frontier)`` and ``suffix(lesioned tensor, *frontier) → model output``."""

    prefix: fx.GraphModule
    suffix: fx.GraphModule


def _descendants(roots: Sequence[fx.Node]) -> set[fx.Node]:
    seen, todo = set(roots), list(roots)
    while todo:
        for user in todo.pop().users:
            if user not in seen:
                seen.add(user)
                todo.append(user)
    return seen


def _inputs(node: fx.Node, skip_first: bool) -> list[fx.Node]:
    found: list[fx.Node] = []

    def keep(a: fx.Node) -> fx.Node:
        found.append(a)
        return a

    fx.node.map_arg((node.args[1:] if skip_first else node.args, node.kwargs), keep)
    return found


def split_at(model: nn.Module, graph: fx.Graph, calls: dict[str, list[tuple[fx.Node | None, fx.Node | None]]],
             layer: LayerInfo) -> Split | None:
    """Split the traced ``graph`` at ``layer``'s tensor (None when the layer's module does not run exactly once)."""
    entries = calls.get(layer.module, [])
    if len(entries) != 1 or entries[0][0] is None:
        return None
    node, first = entries[0]
    assert node is not None
    if layer.site == "input":
        if node.op != "call_module" or first is None:
            return None
        value, consumer, roots = first, node, [node]
    else:
        value, consumer, roots = node, None, list(node.users)
    down = _descendants(roots)
    batch: set[fx.Node] = set()
    for n in graph.nodes:
        if n.op == "placeholder" or any(a in batch for a in n.all_input_nodes):
            batch.add(n)
    frontier = list(dict.fromkeys(a for n in graph.nodes if n in down for a in _inputs(n, n is consumer)
                                  if a not in down and a in batch and not (consumer is None and a is value)))
    if graph.output_node() not in down:
        return None
    return Split(_graph_module(model, _prefix_graph(graph, value, frontier)),
                 _graph_module(model, _suffix_graph(graph, value, consumer, frontier, down, batch)))


def _prefix_graph(graph: fx.Graph, value: fx.Node, frontier: list[fx.Node]) -> fx.Graph:
    g = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    g.graph_copy(graph, env)
    g.output((env[value], *(env[f] for f in frontier)))
    return g


def _suffix_graph(graph: fx.Graph, value: fx.Node, consumer: fx.Node | None, frontier: list[fx.Node],
                  down: set[fx.Node], batch: set[fx.Node]) -> fx.Graph:
    g = fx.Graph()
    lesioned = g.placeholder("lesioned")
    env = {f: g.placeholder(f"frontier_{i}") for i, f in enumerate(frontier)}
    if consumer is None:
        env[value] = lesioned
    for n in graph.nodes:
        if n.op == "output":
            g.output(fx.node.map_arg(n.args[0], env.__getitem__))
        elif consumer is not None and n is consumer:
            rest = fx.node.map_arg((n.args[1:], n.kwargs), env.__getitem__)
            env[n] = g.create_node(n.op, n.target, (lesioned, *rest[0]), rest[1], name=n.name)
        elif n in down or (n not in batch and n not in env):
            env[n] = g.node_copy(n, env.__getitem__)
    return g


def _graph_module(model: nn.Module, graph: fx.Graph) -> fx.GraphModule:
    gm = fx.GraphModule(model, graph)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return gm
