"""No two of our modules import each other, however indirectly, across all four packages.

`lint-imports` ("No import cycles") checks cycles inside each package; one that runs through
two packages (storage -> bot.settings -> storage) has no common parent for it to look in, so
the whole graph is checked here, with grimp (import-linter's own graph builder)."""

from __future__ import annotations

import grimp

PACKAGES = ("bot", "handlers", "storage", "digests")


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Each group of modules that reach one another through imports (Tarjan's algorithm)."""
    ours = {m for m in graph.modules if m.split(".")[0] in PACKAGES}
    edges = {
        m: sorted(n for n in graph.find_modules_directly_imported_by(m) if n in ours) for m in ours
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(ours):
        if root in index:
            continue
        # Iterative depth-first search: (module, position in its edges).
        work = [(root, 0)]
        while work:
            module, at = work.pop()
            if at == 0:
                index[module] = low[module] = len(index)
                stack.append(module)
                on_stack.add(module)
            children = edges[module]
            if at < len(children):
                work.append((module, at + 1))
                child = children[at]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            if low[module] == index[module]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == module:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
    return found


def test_no_import_cycles_between_our_modules() -> None:
    """Every import between our modules points one way: the graph has no cycle."""
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert _cycles(graph) == []


def test_a_cycle_through_two_packages_is_found() -> None:
    """A cycle that runs through two packages is reported with every module in it."""
    graph = grimp.ImportGraph()
    for module in ("storage", "storage.a", "bot", "bot.b", "bot.c"):
        graph.add_module(module)
    graph.add_import(importer="storage.a", imported="bot.b")
    graph.add_import(importer="bot.b", imported="storage.a")
    graph.add_import(importer="bot.c", imported="storage.a")
    assert _cycles(graph) == [["bot.b", "storage.a"]]
