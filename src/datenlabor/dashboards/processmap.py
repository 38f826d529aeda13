"""Layered layout of a directly-follows graph (process map), computed on the server.

A small Sugiyama-style layout, written here because it is a few dozen lines on top of the
standard library (``graphlib``) while a graph-drawing dependency (Graphviz, networkx's
drawing helpers) would add far more than it saves:

1. a virtual start (▶) and end (■) node join the start and end activities;
2. cycles (rework loops) are broken by a depth-first search from the start that follows the
   most frequent edges first; edges closing a cycle are drawn backwards, not used for layers;
3. each node's layer is its longest distance from the start in the remaining acyclic graph;
4. nodes within a layer are ordered by the barycentre of their neighbours (a few sweeps down
   and up), which removes most crossings in procedure graphs.

Coordinates are in SVG user units, top to bottom.
"""

from __future__ import annotations

import math
from graphlib import TopologicalSorter
from typing import Any

START, END = "▶", "■"
NODE_W, NODE_H, LAYER_GAP, NODE_GAP, MARGIN = 200, 40, 70, 30, 20


def _back_edges(nodes: list[str], out: dict[str, list[tuple[str, int]]]) -> set[tuple[str, str]]:
    """Edges closing a cycle in a DFS from START, heaviest edges first (iterative)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    back: set[tuple[str, str]] = set()
    for root in [START, *nodes]:
        if root in state:
            continue
        stack = [(root, iter(sorted(out.get(root, []), key=lambda e: -e[1])))]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            step = next(children, None)
            if step is None:
                state[node] = 2
                stack.pop()
                continue
            child = step[0]
            if state.get(child) == 1:
                back.add((node, child))
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(sorted(out.get(child, []), key=lambda e: -e[1]))))
    return back


def layout(
    edges: list[dict[str, Any]],
    *,
    start: dict[str, int],
    end: dict[str, int],
    measure: str = "frequency",
    activity_counts: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Positions for the nodes and edges of a DFG (rows with from, to, count, median_s)."""
    shown = {e["from"] for e in edges} | {e["to"] for e in edges}
    all_edges = [(e["from"], e["to"], int(e["count"]), e.get("median_s")) for e in edges]
    all_edges += [(START, a, n, None) for a, n in start.items() if a in shown or not edges]
    all_edges += [(a, END, n, None) for a, n in end.items() if a in shown or not edges]
    nodes = sorted({a for a, _b, _n, _m in all_edges} | {b for _a, b, _n, _m in all_edges})
    if not nodes:
        return {"width": 0, "height": 0, "measure": measure, "nodes": [], "edges": []}
    out: dict[str, list[tuple[str, int]]] = {}
    for a, b, n, _m in all_edges:
        if a != b:
            out.setdefault(a, []).append((b, n))
    back = _back_edges([n for n in nodes if n != START], out)
    preds: dict[str, set[str]] = {n: set() for n in nodes}
    for a, b, _n, _m in all_edges:
        if a != b and (a, b) not in back:
            preds[b].add(a)
    layer: dict[str, int] = {}
    for node in TopologicalSorter(preds).static_order():
        layer[node] = max((layer[p] + 1 for p in preds[node]), default=0)
    if END in layer and len(layer) > 1:  # the end below everything
        layer[END] = max(v for k, v in layer.items() if k != END) + 1
    layers: dict[int, list[str]] = {}
    for node in nodes:
        layers.setdefault(layer[node], []).append(node)
    _order(layers, all_edges)
    width = max(len(v) for v in layers.values())
    total_w = width * NODE_W + (width - 1) * NODE_GAP + 2 * MARGIN
    pos: dict[str, tuple[float, float]] = {}
    for i, members in sorted(layers.items()):
        row_w = len(members) * NODE_W + (len(members) - 1) * NODE_GAP
        x0 = (total_w - row_w) / 2
        for j, node in enumerate(members):
            pos[node] = (x0 + j * (NODE_W + NODE_GAP), MARGIN + i * (NODE_H + LAYER_GAP))
    counts = activity_counts or {}
    biggest = max((n for _a, _b, n, _m in all_edges), default=1)
    slowest = max((m or 0 for *_x, m in all_edges), default=0) or 1
    drawn_edges = []
    for a, b, n, med in all_edges:
        (x1, y1), (x2, y2) = pos[a], pos[b]
        weight = n / biggest if measure == "frequency" or med is None else (med or 0) / slowest
        drawn_edges.append(
            {
                "from": a,
                "to": b,
                "count": n,
                "median_s": med,
                "virtual": a == START or b == END,
                "back": (a, b) in back or a == b,
                "width": round(1 + 7 * math.sqrt(max(weight, 0)), 2),
                "path": _edge_path(x1, y1, x2, y2, a == b, (a, b) in back),
            }
        )
    height = MARGIN * 2 + (max(layers) + 1) * NODE_H + max(layers) * LAYER_GAP
    return {
        "width": total_w,
        "height": height,
        "measure": measure,
        "nodes": [
            {
                "id": n,
                "label": n if len(n) <= 26 else n[:25] + "…",
                "x": pos[n][0],
                "y": pos[n][1],
                "w": NODE_W,
                "h": NODE_H,
                "virtual": n in (START, END),
                "count": counts.get(n),
            }
            for n in nodes
        ],
        "edges": drawn_edges,
    }


def _order(layers: dict[int, list[str]], edges: list[tuple[str, str, int, Any]]) -> None:
    """Barycentre ordering within layers, in place (4 sweeps down and up)."""
    nbrs: dict[str, list[str]] = {}
    for a, b, _n, _m in edges:
        if a != b:
            nbrs.setdefault(a, []).append(b)
            nbrs.setdefault(b, []).append(a)
    keys = sorted(layers)
    for sweep in range(8):
        order = keys if sweep % 2 == 0 else list(reversed(keys))
        for i in order:
            index = {n: j for k in keys if k != i for j, n in enumerate(layers[k])}

            def centre(node: str, index: dict[str, int] = index) -> float:
                seen = [index[m] for m in nbrs.get(node, []) if m in index]
                return sum(seen) / len(seen) if seen else 0.0

            layers[i].sort(key=lambda n: (centre(n), n))


def _edge_path(x1: float, y1: float, x2: float, y2: float, loop: bool, back: bool) -> str:
    cx1, cx2 = x1 + NODE_W / 2, x2 + NODE_W / 2
    if loop:  # a self-loop on the node's right side
        x, y = x1 + NODE_W, y1 + NODE_H / 2
        return f"M{x:.0f},{y - 8:.0f} C{x + 40:.0f},{y - 30:.0f} {x + 40:.0f},{y + 30:.0f} {x:.0f},{y + 8:.0f}"
    if back or y2 <= y1:  # upwards: leave and enter on the left, bulging out
        sx, sy, ex, ey = x1, y1 + NODE_H / 2, x2, y2 + NODE_H / 2
        bulge = 40 + abs(ey - sy) / 4
        return f"M{sx:.0f},{sy:.0f} C{sx - bulge:.0f},{sy:.0f} {ex - bulge:.0f},{ey:.0f} {ex:.0f},{ey:.0f}"
    sy, ey = y1 + NODE_H, y2
    mid = (sy + ey) / 2
    return f"M{cx1:.0f},{sy:.0f} C{cx1:.0f},{mid:.0f} {cx2:.0f},{mid:.0f} {cx2:.0f},{ey:.0f}"
