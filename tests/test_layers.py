"""No import cycles in okrsync: in the module graph of ``connectors``, ``mappings`` and ``service`` no two modules
import each other, directly or through others (no strongly connected component of more than one module).

Counted: every import a module makes, at its top or inside a function. A function-local import runs as soon as the
function is called, so a cycle closed by one is hidden, not resolved: the fix is to move the code both sides need
(a dependency to ``service/kit/``, an error or a settings section to a leaf module). Not counted: imports under
``if TYPE_CHECKING:``, which never run (grimp's ``exclude_type_checking_imports``).

The layer contracts (who may import whom) live in ``.importlinter`` and are checked by ``lint-imports``.
"""

from __future__ import annotations

import grimp

PACKAGES = ("connectors", "mappings", "service")


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of ``graph`` with more than one module, each sorted (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = lowlink[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                lowlink[module] = min(lowlink[module], lowlink[imported])
            elif imported in on_stack:
                lowlink[module] = min(lowlink[module], index[imported])
        if lowlink[module] == index[module]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return sorted(found)


def describe(graph: grimp.ImportGraph, component: list[str]) -> str:
    """One cycle through the component's first module, then every import inside the component with its line."""
    first = component[0]
    back = sorted(set(graph.find_modules_directly_imported_by(first)) & set(component))[0]
    chain = graph.find_shortest_chain(importer=back, imported=first) or (back, first)
    lines = [" -> ".join((first, *chain))]
    members = set(component)
    for importer in component:
        for imported in sorted(set(graph.find_modules_directly_imported_by(importer)) & members):
            details = graph.get_import_details(importer=importer, imported=imported)
            where = ", ".join(str(detail["line_number"]) for detail in details)
            lines.append(f"    {importer} imports {imported} (line {where})")
    return "\n".join(lines)


def test_no_import_cycles() -> None:
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True, cache_dir=None)
    cycles = import_cycles(graph)
    assert not cycles, f"{len(cycles)} import cycle(s):\n" + "\n".join(describe(graph, c) for c in cycles)


def test_a_cycle_is_found_and_named() -> None:
    graph = grimp.ImportGraph()
    for module in ("pkg", "pkg.app", "pkg.routes", "pkg.leaf"):
        graph.add_module(module)
    graph.add_import(importer="pkg.app", imported="pkg.routes", line_number=3, line_contents="import pkg.routes")
    graph.add_import(importer="pkg.routes", imported="pkg.app", line_number=9, line_contents="from pkg.app import x")
    graph.add_import(importer="pkg.routes", imported="pkg.leaf", line_number=4, line_contents="import pkg.leaf")

    cycles = import_cycles(graph)

    assert cycles == [["pkg.app", "pkg.routes"]]
    assert describe(graph, cycles[0]) == (
        "pkg.app -> pkg.routes -> pkg.app\n"
        "    pkg.app imports pkg.routes (line 3)\n"
        "    pkg.routes imports pkg.app (line 9)"
    )
