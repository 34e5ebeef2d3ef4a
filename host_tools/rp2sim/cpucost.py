"""What firmware Python costs on the chip: a static cost per statement, charged as it runs.

MicroPython on the RP2040 runs Python some hundred times slower than CPython on a laptop, and
that time matters: a long control cycle delays a button, a busy CPU delays an interrupt handler,
a state machine held while Python works stretches a pulse period. The simulated chip therefore
charges every statement of firmware (and vendored asyncio) code its MicroPython cost before the
statement runs, on the virtual clock: `instrument()` compiles a source file with a call
`__cpu__(cycles)` in front of each statement, `cycles` worked out here from the statement's
syntax tree. Between two statements the clock can move past an interrupt, so a hard interrupt
handler runs between any two statements of task code, as on the chip.

The cost of a statement is the sum of what its parts do (US below, microseconds at 125 MHz).
A call costs the call itself; a call into Python code adds `func_entry` (or `method_entry`)
when the callee starts; a call into the simulated `machine`/`rp2`/`time` modules adds what that
native function costs (`cpu.NATIVE_US`); builtins and the native methods of lists, strings and
dicts are costed by name (BUILTIN_US, METHOD_US), `"..." % args` from its format string, and
`sep.join(items)`, `json` and `print` by what they are given, when they run.

Calibration: ../shared/rp2emu/CALIBRATION.md, and the primitives and firmware steps measured
on MicroPython v1.28.0 (RPI_PICO) in the emulated RP2040 with the same workload the tests run on
this model (tests/rp2sim/test_cpu_model.py, PORT_NOTES.md "CPU time": the figures, and how close
the model gets). Two things the port showed that a laptop would not suggest: a builtin's name costs
about 8 us to look up (the builtins table is searched, not hashed), and string work (formatting,
`join`, `json.dumps`, `print`) costs 50-300 us a call, so a log line takes 1.5-2 ms.

What the model cannot see: the type of a value. A `/` always makes a float (MicroPython boxes
every float on the heap, hence its cost); other arithmetic is costed as small-int arithmetic,
with float literals marking float work. Garbage collection is not modelled per allocation.
"""

from __future__ import annotations

import ast
import builtins
import re
import types

CHARGE_NAME = "__cpu__"  # the builtin the instrumented code calls: __cpu__(cycles)
VALUE_NAME = "__cpu_v__"  # __cpu_v__(cycles, value): charge, then return value (comprehensions)
JOIN_NAME = "__cpu_join__"  # __cpu_join__(sep, items): sep.join(items), charged by its size

# Microseconds at 125 MHz. Parts of a statement; each line's measurement on the port is the
# whole statement (loop overhead subtracted), of which the parts below are the share:
#   `x += 1` 1.44;  `y = o.a` 1.59;  `y = a * b` 1.98 (ints), 6.6 (floats);  `y = l[1]` 1.78
#   `f()` 7.22-7.35;  `o.m()` 11.67-13.2;  `fk("e", a=1, b=2, c=3)` 29.3;  `{3 items}` 18.5
#   `[1, 2, i]` 8.3;  `if a == 4: pass` 2.1;  `for i in range(n)` 3.1 per iteration
US = {
    "stmt": 0.1,  # one statement's dispatch (an expression statement also pops its value)
    "name_local": 0.25,
    "name_global": 1.08,  # module globals: a hashed dict lookup
    "name_builtin": 8.0,  # builtins: a search of the builtins table, 3-15 us by name
    "store_global": 1.3,
    "const": 0.15,
    "attr_load": 1.0,
    "mod_attr": 2.3,  # an attribute of an imported module or class
    "attr_store": 2.0,
    "method_load": 1.2,  # `obj.m` in a call: looked up without making a bound method
    "subscr_load": 1.3,
    "subscr_store": 3.4,
    "slice": 4.0,  # a slice allocates a new object
    "binop": 1.2,
    "aug_binop": 0.8,
    "true_div": 6.0,  # `/` makes a float: allocated on the heap
    "float_op": 6.0,  # arithmetic with a float literal
    "pow": 9.0,
    "compare": 1.4,
    "compare_in": 5.0,  # `x in seq`: a search
    "boolop": 0.4,
    "unary": 0.6,
    "call": 0.75,  # the call itself, into native code
    "call_arg": 0.1,
    "call_kwarg": 7.0,  # keyword arguments: a map is built and searched
    "call_star": 9.0,
    "func_entry": 5.3,  # the extra for a call into a Python function: frame, arguments
    "method_entry": 10.0,  # ... into a Python method (instance and class look-ups, self)
    "build": 4.0,  # a new list, tuple or set (heap allocation)
    "build_item": 1.2,
    "build_dict": 6.0,
    "build_dict_item": 4.0,
    "format": 35.0,  # `"..." % args`: string formatting, a new string
    "format_char": 1.5,  # per character of the format string
    "fstring": 60.0,
    "loop_iter": 2.85,  # one iteration of a `for` over a range
    "loop_iter_seq": 2.4,  # ... over a list or tuple
    "while_iter": 0.5,
    "return": 0.4,
    "yield": 3.0,  # yield / await: a generator switch
    "raise": 25.0,  # making and raising an exception
    "except": 6.0,  # entering a handler
    "try": 0.6,
    "with": 8.0,
    "import": 8.0,  # an import statement of a module already loaded
    "def": 3.0,  # making a function or class object
    "lambda": 3.0,
    "del": 1.0,
    "comp_item": 2.4,  # one item of a comprehension
}
# Each conversion of a `%` format: %s 10, %d/%x 45, %f/%g/%e 145 (the port's float printing).
FORMAT_US = {"s": 10.0, "r": 30.0, "d": 45.0, "i": 45.0, "x": 45.0, "f": 145.0, "g": 145.0}

# Builtins called by name: what the native function costs beyond its look-up and call
# (port: isinstance(v, int) 30 and (v, (int, str)) 55 in all; len(l) 9; round(2.5) 26,
# round(x, 3) 117; str(1234) 39, str(3.25) 210; int("1234") 24; int(1.5) 20; float(7) 11.5;
# abs(-3) 25; min(3, 4) 18; sorted(8 items) 82; getattr 13).
BUILTIN_US = {
    "isinstance": 12.0,
    "len": 1.0,
    "round": 10.0,  # round(x); with ndigits: + ROUND_DIGITS_US
    "str": 25.0,
    "int": 10.0,
    "float": 3.0,
    "abs": 10.0,
    "min": 8.0,
    "max": 8.0,
    "sorted": 70.0,
    "getattr": 4.0,
    "hasattr": 4.0,
    "range": 2.0,
    "enumerate": 6.0,
    "bytes": 20.0,
    "bytearray": 20.0,
    "bool": 2.0,
    "sum": 10.0,
    "any": 8.0,
    "all": 8.0,
    "iter": 4.0,
    "next": 4.0,
    "callable": 3.0,
    "type": 3.0,
    "id": 3.0,
    "hex": 30.0,
    "repr": 40.0,
    "list": 10.0,
    "tuple": 10.0,
    "dict": 10.0,
    "set": 10.0,
    "memoryview": 8.0,
}
ROUND_DIGITS_US = 95.0
# Functions of the `math` module (software floating point: math.exp(-0.5) 24 us in all).
MATH_US = 18.0
# Native methods of str, list, dict and bytes, by name, beyond the method call (port: append
# 5.5 in all; d.get 5.6; s.find 12.7; s.split() of 4 words 268; bytes(...).decode() 119).
METHOD_US = {
    "append": 2.7,
    "pop": 3.0,
    "popleft": 3.0,
    "extend": 6.0,
    "insert": 5.0,
    "remove": 6.0,
    "index": 4.0,
    "count": 6.0,
    "get": 2.8,
    "items": 3.0,
    "keys": 3.0,
    "values": 3.0,
    "copy": 10.0,
    "clear": 2.0,
    "find": 9.0,
    "startswith": 10.0,
    "endswith": 10.0,
    "split": 250.0,
    "strip": 40.0,
    "decode": 60.0,
    "encode": 60.0,
    "replace": 60.0,
    "lower": 40.0,
    "upper": 40.0,
    "tolist": 20.0,
}

MHZ = 125  # the clock the table was measured at: costs are cycles, whatever the board's clock
_BUILTIN_NAMES = frozenset(dir(builtins))
_FORMAT_RE = re.compile(r"%[-+ #0]*(\*|\d+)?(\.(\*|\d+))?([a-zA-Z%])")


def cycles(us: float) -> int:
    return int(round(us * MHZ))


def format_us(fmt: str) -> float:
    """What `fmt % args` costs, from the format string alone."""
    us = US["format"] + US["format_char"] * len(fmt)
    for m in _FORMAT_RE.finditer(fmt):
        conv = m.group(4)
        if conv != "%":
            us += FORMAT_US.get(conv.lower(), FORMAT_US["s"])
    return us


def _local_names(fn: ast.AST) -> set[str]:
    """Names local to a function: its parameters and whatever it binds (but not `global`)."""
    out: set[str] = set()
    declared_global: set[str] = set()
    args = fn.args  # type: ignore[attr-defined]
    for a in args.posonlyargs + args.args + args.kwonlyargs:
        out.add(a.arg)
    if args.vararg:
        out.add(args.vararg.arg)
    if args.kwarg:
        out.add(args.kwarg.arg)
    for node in _walk_scope(fn):
        if isinstance(node, ast.Global | ast.Nonlocal):
            declared_global.update(node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            out.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out.add(node.name)
        elif isinstance(node, ast.alias):
            out.add((node.asname or node.name).partition(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            out.add(node.name)
    return out - declared_global


def _walk_scope(fn: ast.AST):
    """The nodes of one function's own scope (not those of nested functions or classes)."""
    todo = list(ast.iter_child_nodes(fn))
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        todo.extend(ast.iter_child_nodes(node))


class _Module:
    """What the module's top level binds: globals, imported names, const() names."""

    def __init__(self, tree: ast.Module):
        self.globals: set[str] = set()
        self.imported: set[str] = set()  # modules and classes: their attributes cost mod_attr
        self.consts: set[str] = set()
        for node in _walk_scope(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                self.globals.add(node.id)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                self.globals.add(node.name)
            elif isinstance(node, ast.ClassDef):
                self.globals.add(node.name)
                self.imported.add(node.name)
            elif isinstance(node, ast.alias):
                name = (node.asname or node.name).partition(".")[0]
                self.globals.add(name)
                self.imported.add(name)
        for node in tree.body:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name)
                and node.value.func.id == "const"
            ):
                # MicroPython folds const() names into the code that uses them.
                self.consts.add(node.targets[0].id)


class _Coster:
    """Microseconds an expression costs, not counting what its nested functions do."""

    def __init__(self, local: set[str] | None, mod: _Module):
        self.local = local  # None at module level: every name is a global
        self.mod = mod

    def name(self, node: ast.Name) -> float:
        n = node.id
        if n in self.mod.consts:
            return US["const"]
        if self.local is not None and n in self.local:
            return US["name_local"]
        if n not in self.mod.globals and n in _BUILTIN_NAMES:
            return US["name_builtin"]
        return US["name_global"]

    def expr(self, node: ast.AST | None) -> float:
        if node is None:
            return 0.0
        m = getattr(self, "_" + type(node).__name__, None)
        if m is not None:
            return m(node)
        return sum(self.expr(c) for c in ast.iter_child_nodes(node) if isinstance(c, ast.expr))

    def target(self, node: ast.AST) -> float:
        """The cost of storing into an assignment target."""
        if isinstance(node, ast.Name):
            if self.local is not None and node.id in self.local:
                return US["name_local"]
            return US["store_global"]
        if isinstance(node, ast.Attribute):
            return self.expr(node.value) + US["attr_store"]
        if isinstance(node, ast.Subscript):
            sl = US["slice"] if isinstance(node.slice, ast.Slice) else 0.0
            return self.expr(node.value) + self.expr(node.slice) + US["subscr_store"] + sl
        if isinstance(node, ast.Tuple | ast.List):
            return US["build_item"] * len(node.elts) + sum(self.target(e) for e in node.elts)
        if isinstance(node, ast.Starred):
            return US["build"] + self.target(node.value)
        return 0.0

    def _Name(self, node):
        return self.name(node)

    def _Constant(self, node):
        return US["const"]

    def _Attribute(self, node):
        v = node.value
        if isinstance(v, ast.Name) and v.id in self.mod.imported:
            return self.expr(v) + US["mod_attr"]
        return self.expr(v) + US["attr_load"]

    def _Subscript(self, node):
        sl = US["slice"] if isinstance(node.slice, ast.Slice) else 0.0
        return self.expr(node.value) + self.expr(node.slice) + US["subscr_load"] + sl

    def _Slice(self, node):
        return self.expr(node.lower) + self.expr(node.upper) + self.expr(node.step)

    def _BinOp(self, node):
        c = self.expr(node.left) + self.expr(node.right)
        if isinstance(node.op, ast.Mod) and _is_str(node.left):
            return c + format_us(node.left.value)
        if isinstance(node.op, ast.Div):
            return c + US["true_div"]
        if isinstance(node.op, ast.Pow):
            return c + US["pow"]
        if _is_float(node.left) or _is_float(node.right):
            return c + US["float_op"]
        return c + US["binop"]

    def _UnaryOp(self, node):
        return self.expr(node.operand) + US["unary"]

    def _BoolOp(self, node):
        return sum(self.expr(v) + US["boolop"] for v in node.values)

    def _Compare(self, node):
        ops = sum(
            US["compare_in"] if isinstance(op, ast.In | ast.NotIn) else US["compare"]
            for op in node.ops
        )
        return self.expr(node.left) + sum(self.expr(c) for c in node.comparators) + ops

    def _IfExp(self, node):
        # Only one branch runs: charge the dearer one (the model is static).
        return self.expr(node.test) + max(self.expr(node.body), self.expr(node.orelse))

    def _Call(self, node):
        f = node.func
        native = 0.0
        if isinstance(f, ast.Attribute):
            c = self.expr(f.value) + US["method_load"]
            owner = f.value
            is_self = isinstance(owner, ast.Name) and owner.id == "self"
            if isinstance(owner, ast.Name) and owner.id == "math":
                native = MATH_US
            elif not is_self and not (
                isinstance(owner, ast.Name) and owner.id in self.mod.imported
            ):
                native = METHOD_US.get(f.attr, 0.0)
        else:
            c = self.expr(f)
            if isinstance(f, ast.Name) and f.id not in self.mod.globals:
                native = BUILTIN_US.get(f.id, 0.0)
                if f.id == "round" and len(node.args) > 1:
                    native += ROUND_DIGITS_US
        c += US["call"] + native
        for a in node.args:
            if isinstance(a, ast.Starred):
                c += US["call_star"] + self.expr(a.value)
            else:
                c += US["call_arg"] + self.expr(a)
        for k in node.keywords:
            c += (US["call_star"] if k.arg is None else US["call_kwarg"]) + self.expr(k.value)
        return c

    def _build(self, elts) -> float:
        return US["build"] + sum(US["build_item"] + self.expr(e) for e in elts)

    def _List(self, node):
        return self._build(node.elts)

    def _Tuple(self, node):
        if all(isinstance(e, ast.Constant) for e in node.elts):
            return US["const"]  # a constant tuple is built once, at compile time
        return self._build(node.elts)

    def _Set(self, node):
        return self._build(node.elts)

    def _Dict(self, node):
        items = [k for k in node.keys if k is not None] + node.values
        return (
            US["build_dict"]
            + sum(self.expr(e) for e in items)
            + US["build_dict_item"] * len(node.values)
        )

    def _JoinedStr(self, node):
        return US["fstring"] + sum(self.expr(v) for v in node.values)

    def _FormattedValue(self, node):
        return FORMAT_US["s"] + self.expr(node.value)

    def _Lambda(self, node):
        return US["lambda"]

    def _comp(self, node):
        # The per-item cost is charged inside the comprehension (`__cpu_v__`); here the
        # container and the first iterable.
        return US["build"] + self.expr(node.generators[0].iter)

    _ListComp = _SetComp = _DictComp = _GeneratorExp = _comp

    def _Await(self, node):
        return US["yield"] + self.expr(node.value)

    def _Yield(self, node):
        return US["yield"] + self.expr(node.value)

    def _YieldFrom(self, node):
        return US["yield"] + self.expr(node.value)

    def _Starred(self, node):
        return US["call_star"] + self.expr(node.value)

    def _NamedExpr(self, node):
        return self.expr(node.value) + US["name_local"]


def _is_str(node) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _is_float(node) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, float)


class _Instrumenter(ast.NodeTransformer):
    """Puts `__cpu__(cycles)` in front of every statement, and charges loop iterations,
    function entries, exception handlers and comprehension items where they happen."""

    def __init__(self, mod: _Module):
        self.mod = mod
        self.scopes: list[_Coster] = [_Coster(None, mod)]
        self.in_class = False

    @property
    def cost(self) -> _Coster:
        return self.scopes[-1]

    def _charge(self, us: float, at: ast.AST) -> ast.stmt:
        call = ast.Expr(
            ast.Call(ast.Name(CHARGE_NAME, ast.Load()), [ast.Constant(cycles(us))], [])
        )
        return ast.copy_location(call, at)

    def _body(self, stmts: list[ast.stmt], head_us: float = 0.0, at=None) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        if head_us and stmts:
            out.append(self._charge(head_us, at or stmts[0]))
        for s in stmts:
            us = self._own_cost(s)
            new = self.visit(s)
            if us:
                out.append(self._charge(us, s))
            if isinstance(new, list):
                out.extend(new)
            elif new is not None:
                out.append(new)
        return out

    def _own_cost(self, s: ast.stmt) -> float:
        """What statement s costs itself, before any statement nested in it runs."""
        c = self.cost
        base = US["stmt"]
        if isinstance(s, ast.Expr):
            if isinstance(s.value, ast.Constant):
                return 0.0  # a docstring or a bare constant compiles to nothing
            return base + c.expr(s.value)
        if isinstance(s, ast.Assign):
            t0 = s.targets[0]
            v = s.value
            if (
                len(s.targets) == 1
                and isinstance(t0, ast.Tuple)
                and isinstance(v, ast.Tuple)
                and len(t0.elts) == len(v.elts) <= 3
            ):
                # `a, b = x, y` swaps on the stack: no tuple is built.
                return base + sum(c.expr(e) for e in v.elts) + sum(c.target(e) for e in t0.elts)
            return base + c.expr(v) + sum(c.target(t) for t in s.targets)
        if isinstance(s, ast.AugAssign):
            load = c.expr(s.target) if isinstance(s.target, ast.Name) else 0.0
            op = US["true_div"] if isinstance(s.op, ast.Div) else US["aug_binop"]
            return base + load + c.expr(s.value) + op + c.target(s.target)
        if isinstance(s, ast.AnnAssign):
            return base + c.expr(s.value) + (c.target(s.target) if s.value else 0.0)
        if isinstance(s, ast.Return):
            return US["return"] + c.expr(s.value)
        if isinstance(s, ast.If | ast.While):
            return base + c.expr(s.test)
        if isinstance(s, ast.For | ast.AsyncFor):
            return base + c.expr(s.iter) + US["call"]
        if isinstance(s, ast.With | ast.AsyncWith):
            return US["with"] + sum(c.expr(i.context_expr) for i in s.items)
        if isinstance(s, ast.Try):
            return US["try"]
        if isinstance(s, ast.Raise):
            return US["raise"] + c.expr(s.exc)
        if isinstance(s, ast.Assert):
            return base + c.expr(s.test)
        if isinstance(s, ast.Delete):
            return US["del"] * len(s.targets)
        if isinstance(s, ast.Import | ast.ImportFrom):
            return US["import"] * (1 + 0.3 * len(s.names))
        if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            return US["def"] + sum(c.expr(d) for d in s.decorator_list)
        if isinstance(s, ast.Pass | ast.Global | ast.Nonlocal):
            return 0.0
        return base

    # -- scopes -------------------------------------------------------------------------
    def visit_Module(self, node):
        node.body = self._body(node.body)
        return node

    def _function(self, node):
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        method = self.in_class and node.args.args and not node.decorator_list
        self.scopes.append(_Coster(_local_names(node), self.mod))
        saved, self.in_class = self.in_class, False
        body = node.body
        doc = []
        if body and isinstance(body[0], ast.Expr) and _is_str(body[0].value):
            doc, body = body[:1], body[1:]
        entry = self._charge(US["method_entry" if method else "func_entry"], node)
        node.body = doc + [entry] + self._body(body) if body else doc + [entry]
        self.scopes.pop()
        self.in_class = saved
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_ClassDef(self, node):
        saved, self.in_class = self.in_class, True
        node.body = self._body(node.body)
        self.in_class = saved
        return node

    # -- compound statements ------------------------------------------------------------
    def visit_If(self, node):
        node.test = self.visit(node.test)
        node.body = self._body(node.body)
        node.orelse = self._body(node.orelse)
        return node

    def visit_While(self, node):
        # The test runs once more per iteration: charged at the top of the body.
        again = US["while_iter"] + self.cost.expr(node.test)
        node.test = self.visit(node.test)
        node.body = self._body(node.body, again, node)
        node.orelse = self._body(node.orelse)
        return node

    def _for(self, node):
        it = node.iter
        is_range = (
            isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and (it.func.id == "range")
        )
        step = US["loop_iter" if is_range else "loop_iter_seq"] + self.cost.target(node.target)
        node.iter = self.visit(node.iter)
        node.body = self._body(node.body, step, node)
        node.orelse = self._body(node.orelse)
        return node

    visit_For = visit_AsyncFor = _for

    def _with(self, node):
        node.body = self._body(node.body)
        return node

    visit_With = visit_AsyncWith = _with

    def visit_Try(self, node):
        node.body = self._body(node.body)
        for h in node.handlers:
            h.body = self._body(h.body, US["except"] + self.cost.expr(h.type), h)
        node.orelse = self._body(node.orelse)
        node.finalbody = self._body(node.finalbody)
        return node

    # -- expressions charged when they run ----------------------------------------------
    def visit_Call(self, node):
        self.generic_visit(node)
        f = node.func
        if (
            isinstance(f, ast.Attribute)
            and f.attr == "join"
            and len(node.args) == 1
            and not node.keywords
            and not isinstance(node.args[0], ast.Starred)
        ):
            # sep.join(items) -> __cpu_join__(sep, items): its cost depends on the items.
            new = ast.Call(ast.Name(JOIN_NAME, ast.Load()), [f.value, node.args[0]], [])
            return ast.copy_location(new, node)
        return node

    def _item(self, value: ast.expr, node: ast.AST) -> ast.expr:
        us = US["comp_item"] + self.cost.expr(value)
        for g in node.generators:  # type: ignore[attr-defined]
            us += sum(self.cost.expr(i) + US["compare"] for i in g.ifs)
        call = ast.Call(ast.Name(VALUE_NAME, ast.Load()), [ast.Constant(cycles(us)), value], [])
        return ast.copy_location(call, value)

    def _comp(self, node):
        self.generic_visit(node)
        node.elt = self._item(node.elt, node)
        return node

    visit_ListComp = visit_SetComp = visit_GeneratorExp = _comp

    def visit_DictComp(self, node):
        self.generic_visit(node)
        node.value = self._item(node.value, node)
        return node

    def visit_Lambda(self, node):
        return node  # charged as a call where it is called


def instrument(source: str | bytes, filename: str) -> types.CodeType:
    """Compile firmware source with its CPU cost charged statement by statement."""
    tree = ast.parse(source, filename)
    tree = _Instrumenter(_Module(tree)).visit(tree)
    ast.fix_missing_locations(tree)
    return compile(tree, filename, "exec", dont_inherit=True)


def statement_costs(source: str) -> list[tuple[int, int]]:
    """(line, cycles) of every charge `instrument` would insert: for reading the model."""
    tree = ast.parse(source)
    tree = _Instrumenter(_Module(tree)).visit(tree)
    out = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in (CHARGE_NAME, VALUE_NAME)
        ):
            line = getattr(node, "lineno", 0)
            out.append((line, node.args[0].value))  # type: ignore[attr-defined]
    return sorted(out)
