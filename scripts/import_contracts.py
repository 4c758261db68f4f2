"""An import-linter contract type of this project's: an allowlist.

``forbidden`` contracts list what a layer must not import, so a new dependency slips
past them until someone adds it to the list. An ``allowlist`` contract turns that
round: every module of ``source_modules`` may import only the standard library and
the modules of ``allowed_modules`` (and their descendants), nothing else. Configured in
pyproject.toml, run by ``lint-imports`` (``make lint``).
"""

from __future__ import annotations

import sys
from typing import Any

from importlinter import Contract, ContractCheck, fields, output


class AllowlistContract(Contract):
    type_name = "allowlist"

    source_modules = fields.ListField(subfield=fields.ModuleField())
    allowed_modules = fields.ListField(subfield=fields.ModuleField())

    def check(self, graph: Any, verbose: bool) -> ContractCheck:
        allowed = [module.name for module in self.allowed_modules]  # type: ignore[attr-defined]
        illegal = []
        for source in self.source_modules:  # type: ignore[attr-defined]
            for importer in sorted({source.name, *graph.find_descendants(source.name)}):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    if not _permitted(imported, allowed):
                        details = graph.get_import_details(importer=importer, imported=imported)
                        lines = sorted({detail["line_number"] for detail in details})
                        illegal.append((importer, imported, lines))
        return ContractCheck(kept=not illegal, metadata={"illegal": illegal})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for importer, imported, lines in check.metadata["illegal"]:
            where = ", ".join(f"l.{line}" for line in lines)
            output.print_error(f"{importer} imports {imported} ({where}), which is not allowed")
            output.new_line()


def _permitted(module: str, allowed: list[str]) -> bool:
    top = module.split(".", maxsplit=1)[0]
    if top in sys.stdlib_module_names or top == "__future__":
        return True
    return any(module == name or module.startswith(f"{name}.") for name in allowed)
