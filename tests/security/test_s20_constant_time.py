"""S-20, S-06: state and nonce are compared in constant time (`hmac.compare_digest`).

A timing difference between "first byte wrong" and "last byte wrong" would let an attacker who
can time the listener's answers guess a state byte by byte; `==` on strings stops at the first
difference. No behavioural test sees the difference, so this one reads the code (AST): the two
places that compare a received value with the login's — `authorize.state_matches` (every
callback, loopback or routed, goes through it) and the nonce rule of
`idtoken.validate_id_token` — call `compare_digest` on that value, and nothing in the package
compares anything named state or nonce with `==`/`!=`. The check is run on a copy of the code
with `compare_digest` turned into `==`, to show it would notice.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "nbauth"
SECRET_NAMES = frozenset({"state", "nonce"})
_DIGEST_MODULES = frozenset({"hmac", "secrets"})


def mentions_secret(node: ast.AST) -> bool:
    """Whether an expression involves a name, attribute or key called state or nonce."""
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and child.id in SECRET_NAMES:
            return True
        if isinstance(child, ast.Attribute) and child.attr in SECRET_NAMES:
            return True
        if isinstance(child, ast.Constant) and child.value in SECRET_NAMES:
            return True  # params.get("state"), claims["nonce"]
    return False


def is_compare_digest(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "compare_digest" and isinstance(node.func.value, ast.Name)
            and node.func.value.id in _DIGEST_MODULES)


def plain_comparisons(tree: ast.AST) -> list[int]:
    """Lines where something named state or nonce is compared with == or !=."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(
                isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
            if any(mentions_secret(side) for side in (node.left, *node.comparators)):
                lines.append(node.lineno)
    return lines


def function(tree: ast.AST, name: str) -> ast.FunctionDef:
    found = [node for node in ast.walk(tree)
             if isinstance(node, ast.FunctionDef) and node.name == name]
    assert len(found) == 1, name
    return found[0]


def constant_time_comparisons(func: ast.FunctionDef, attribute_or_name: str) -> int:
    """How many compare_digest calls in `func` take an argument involving `attribute_or_name`."""
    count = 0
    for node in ast.walk(func):
        if is_compare_digest(node):
            assert isinstance(node, ast.Call)
            for arg in node.args:
                if any((isinstance(c, ast.Attribute) and c.attr == attribute_or_name)
                       or (isinstance(c, ast.Name) and c.id == attribute_or_name)
                       for c in ast.walk(arg)):
                    count += 1
                    break
    return count


def calls(func: ast.FunctionDef, name: str) -> bool:
    return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
               and node.func.id == name for node in ast.walk(func))


def problems(trees: dict[str, ast.AST]) -> list[str]:
    """Everything wrong with how the given modules compare state and nonce."""
    found = []
    for name, tree in trees.items():
        found += [f"{name}:{line}: state/nonce compared with ==/!="
                  for line in plain_comparisons(tree)]
    authorize, idtoken, flow = trees["authorize.py"], trees["idtoken.py"], trees["flow.py"]
    if constant_time_comparisons(function(authorize, "state_matches"), "state") != 1:
        found.append("authorize.state_matches does not compare the state with compare_digest")
    if not calls(function(authorize, "check_authorization_response"), "state_matches"):
        found.append("check_authorization_response does not use state_matches")
    if not any(calls(node, "state_matches") for node in ast.walk(flow)
               if isinstance(node, ast.FunctionDef)):
        found.append("the login (flow.py) does not check callbacks with state_matches")
    if constant_time_comparisons(function(idtoken, "validate_id_token"), "nonce") != 1:
        found.append("idtoken.validate_id_token does not compare the nonce with compare_digest")
    return found


def package_trees() -> dict[str, ast.AST]:
    return {str(path.relative_to(PACKAGE)): ast.parse(path.read_text(encoding="utf-8"))
            for path in sorted(PACKAGE.rglob("*.py"))}


class _DigestToEquals(ast.NodeTransformer):
    """`hmac.compare_digest(a, b)` → `a == b`: the regression this test exists to catch."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if is_compare_digest(node) and len(node.args) == 2:
            return ast.copy_location(
                ast.Compare(left=node.args[0], ops=[ast.Eq()], comparators=[node.args[1]]),
                node)
        return node


def test_S20_S06_state_and_nonce_are_compared_in_constant_time() -> None:
    trees = package_trees()
    assert {"authorize.py", "idtoken.py", "flow.py"} <= trees.keys()
    assert problems(trees) == []


def test_S20_the_check_notices_compare_digest_replaced_by_equals() -> None:
    for module in ("authorize.py", "idtoken.py"):
        trees = package_trees()
        trees[module] = ast.fix_missing_locations(_DigestToEquals().visit(trees[module]))
        found = problems(trees)
        assert any("==" in problem for problem in found), module
        assert any("compare_digest" in problem for problem in found), module


def test_S20_the_check_notices_a_plain_comparison_anywhere() -> None:
    for source in ("ok = received == request.state",
                   "if claims.get('nonce') != nonce: raise ValueError",
                   "ok = params['state'] == expected"):
        assert plain_comparisons(ast.parse(source)) == [1], source
    assert plain_comparisons(ast.parse("ok = registration.state_hash != name")) == []
