"""The package's structure, checked from its source: nothing outside the registries branches on
component names, imports follow the layers of docs/ARCHITECTURE.md with no circle, and what that
page quotes (signatures, the eval/ scripts) is true."""

import ast
import collections
import importlib
import inspect
import pathlib
import re

import pytest

from jaxlic.models import components, registry

ROOT = pathlib.Path(__file__).parents[1]
PACKAGE = ROOT / "jaxlic"
DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text()

# ------------------------------------------------------------------------------ branching guard
#: Where component names may be compared: the latent codecs and the registries.
EXEMPT = ("jaxlic/latent/", "jaxlic/models/components.py", "jaxlic/models/registry.py")
#: (module, string) pairs that spell a component name but mean something else.
NOT_COMPONENTS = {("jaxlic/entropy/quantize.py", "noise")}  # a rounding mode of `quantize`


def _component_names() -> set[str]:
    tables = (
        components.TRANSFORMS,
        components.HYPERPRIORS,
        components.ATTENTIONS,
        components.TRAIN_QUANT,
        components.FAMILIES,
        components.SCHEDULES,
    )
    return {name for table in tables for name in table}


def _component_classes() -> set[str]:
    """Classes of the latent codecs (families, schedules, the codec) and of the attention blocks."""
    files = ["latent/families.py", "latent/schedules.py", "latent/codec.py", "layers/attention.py"]
    return {
        node.name
        for f in files
        for node in ast.walk(ast.parse((PACKAGE / f).read_text()))
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_")
    }


def _strings(node) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _names(node) -> list[str]:
    return [
        n.id if isinstance(n, ast.Name) else n.attr
        for n in ast.walk(node)
        if isinstance(n, ast.Name | ast.Attribute)
    ]


def offences(source: str, allowed: frozenset = frozenset()) -> list[str]:
    """Branches on component or model names in `source`: comparisons (and `match` cases) with a
    registered name, `isinstance`/`issubclass` against a component class, and prefix or suffix
    tests of model names."""
    words = (_component_names() | set(registry.list_models(variable_rate=True))) - allowed
    models = registry.list_models(variable_rate=True)
    classes = _component_classes()
    found = []
    for node in ast.walk(ast.parse(source)):
        text = f"line {getattr(node, 'lineno', '?')}: "
        if isinstance(node, ast.Compare) and words & set(_strings(node)):
            found.append(text + ast.unparse(node))
        elif isinstance(node, ast.MatchValue) and words & set(_strings(node)):
            found.append(text + "case " + ast.unparse(node))
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in ("isinstance", "issubclass") and len(node.args) == 2:
                if classes & set(_names(node.args[1])):
                    found.append(text + ast.unparse(node))
            elif isinstance(func, ast.Attribute) and func.attr in (
                "startswith",
                "endswith",
                "removeprefix",
                "removesuffix",
            ):
                end = func.attr in ("endswith", "removesuffix")
                for s in (s for arg in node.args for s in _strings(arg) if len(s) >= 2):
                    if (
                        any((m.endswith(s) if end else m.startswith(s)) and m != s for m in models)
                        or s in words
                    ):
                        found.append(text + ast.unparse(node))
                        break
    return found


def test_the_guard_catches_each_kind_of_branch():
    branches = [
        'if cfg.context == "serial": pass',
        'x = cfg.entropy in ("gmm", "scale")',
        'mixed = self.cfg.train_quant != "mixed"',
        "if isinstance(schedule, Checkerboard): pass",
        "ok = isinstance(f, (int, schedules.Serial))",
        'if name.startswith("cheng2020"): pass',
        'vr = name.endswith("-vr")',
        'if name == "ckbd": pass',
        'match cfg.attention:\n    case "fdram": pass',
    ]
    for source in branches:
        assert offences(source), source
    innocent = [
        'if mode == "round": pass',
        'if key.startswith("state_dict/"): pass',
        "if isinstance(x, dict): pass",
        "flag = components.TRAIN_QUANT[cfg.train_quant].straight_through",
    ]
    for source in innocent:
        assert not offences(source), source


def test_nothing_outside_the_registries_branches_on_component_names():
    checked, found = 0, []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(EXEMPT):
            continue
        allowed = frozenset(s for f, s in NOT_COMPONENTS if f == rel)
        found += [f"{rel} {o}" for o in offences(path.read_text(), allowed)]
        checked += 1
    assert checked > 30  # the walk found the package
    assert not found, "\n".join(found)


# ------------------------------------------------------------------------------ import graph
def _modules() -> dict[str, pathlib.Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def _unit(module: str) -> str:
    """`jaxlic`, `jaxlic.<subpackage>` or `jaxlic.<top-level module>`."""
    return ".".join(module.split(".")[:2])


def _imports(module: str, path: pathlib.Path, mods: dict) -> set[str]:
    """The jaxlic modules `module` imports anywhere in its source (deferred imports included)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
        for t in targets:
            if t.split(".")[0] != "jaxlic":
                continue
            while t not in mods:
                t = t.rpartition(".")[0]
            out.add(t)
    return out


def unit_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = collections.defaultdict(set)
    for module, path in mods.items():
        graph[_unit(module)] |= {_unit(t) for t in _imports(module, path, mods)} - {_unit(module)}
    return graph


def doc_layers() -> dict[str, int]:
    """{unit: layer} from the numbered list under "## Import layers" in docs/ARCHITECTURE.md."""
    section = DOC.split("## Import layers\n", 1)[1].split("\n## ", 1)[0]
    layers = {}
    for number, line in re.findall(r"^(\d+)\. (.*)$", section, re.M):
        for path in re.findall(r"`(jaxlic/[\w/.]*)`", line.split(":")[0]):
            unit = path.removesuffix("/").removesuffix(".py").replace("/", ".").removesuffix(".__init__")
            layers[unit] = int(number)
    return layers


def test_every_unit_has_a_layer_in_the_doc():
    layers = doc_layers()
    units = {_unit(m) for m in _modules()}
    assert not units - set(layers), "units missing from docs/ARCHITECTURE.md's layers"
    assert not set(layers) - units, "layers name units that do not exist"


def test_no_import_goes_up_a_layer():
    layers = doc_layers()
    upward = [
        f"{a} (layer {layers[a]}) imports {b} (layer {layers[b]})"
        for a, targets in unit_graph().items()
        for b in targets
        if layers.get(b, 0) > layers.get(a, 0)
    ]
    assert not upward, "\n".join(upward)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph`, or None."""
    state, stack = {}, []

    def visit(u):
        state[u] = "open"
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == "open":
                return stack[stack.index(v) :] + [v]
            if v not in state and (cycle := visit(v)):
                return cycle
        state[u] = "done"
        stack.pop()
        return None

    for u in sorted(graph):
        if u not in state and (cycle := visit(u)):
            return cycle
    return None


def test_no_import_circle_between_units():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert find_cycle(unit_graph()) is None


def test_coding_imports_nothing_from_entropy():
    """The range coder sits below the entropy models (no circle between the two)."""
    assert "jaxlic.entropy" not in unit_graph()["jaxlic.coding"]


# ------------------------------------------------------------------------------ the doc is true
#: Calls the doc quotes that are not jaxlic's (Python, numpy, Flax, a placeholder function `r`) or
#: not calls (a base class).
NOT_JAXLIC = {"round", "float32", "log", "nn.Conv", "model.apply", "self.make_rng", "r", "BitstreamError"}


def _callables() -> dict[str, object]:
    """{dotted name: object} of every public callable of jaxlic and of train/configs, with the
    methods of their classes."""
    import pkgutil

    import jaxlic
    import train.configs

    names = ["jaxlic"] + [m.name for m in pkgutil.walk_packages(jaxlic.__path__, "jaxlic.")]
    names += [m.name for m in pkgutil.iter_modules(train.configs.__path__, "train.configs.")]
    index = {}
    for module_name in names:
        module = importlib.import_module(module_name)
        for attr, obj in vars(module).items():
            if attr.startswith("__") or inspect.ismodule(obj) or not callable(obj):
                continue
            index[f"{module_name}.{attr}"] = obj
            if inspect.isclass(obj) and obj.__module__.startswith("jaxlic"):
                for meth in dir(obj):
                    member = inspect.getattr_static(obj, meth, None)
                    if (meth == "__call__" or not meth.startswith("__")) and callable(
                        getattr(obj, meth, None)
                    ):
                        index[f"{module_name}.{attr}.{meth}"] = (
                            member if isinstance(member, property) else getattr(obj, meth)
                        )
    return index


def _quoted_calls() -> list[tuple[str, str]]:
    """`name(arguments)` quotations of the doc (one level of nested brackets)."""
    calls = re.findall(r"`([A-Za-z_][\w.]*)\(((?:[^()`]|\([^()`]*\))*)\)", DOC.replace("\n", " "))
    return sorted({(name, re.sub(" +", " ", args)) for name, args in calls if name not in NOT_JAXLIC})


def _arguments(args: str) -> list[tuple[str, str | None]]:
    """The parameters an argument text quotes, with their default's text: `a, b=1, *, c` ->
    [(a, None), (b, "1"), (c, None)]; expressions (`cfg.exact`, `...`) name none."""
    out = []
    for part in re.split(r",(?![^()\[\]{}]*[)\]}])", args):
        name, eq, default = part.partition("=")
        name = re.sub(r"\[.*\]", "", name.split(":")[0]).strip()
        if re.fullmatch(r"[A-Za-z_]\w*", name):
            out.append((name, default.split("|")[0].strip() or None if eq else None))
    return out


def _fits(obj, args: str) -> str | None:
    """None if `obj` takes the quoted parameters with the quoted (literal) defaults, else why not;
    a quotation that starts with "..." is a call (its values are arguments, not defaults)."""
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return "no signature"
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for name, default in _arguments(args):
        if name not in params:
            if takes_any:
                continue
            return f"no parameter {name!r} (it takes {list(params)})"
        if not default or args.lstrip().startswith("..."):
            continue
        try:
            value = ast.literal_eval(default)
        except (ValueError, SyntaxError):
            continue  # not a literal: only the name is checked
        if value is not Ellipsis and params[name].default != value:
            return f"{name} defaults to {params[name].default!r}, not {default}"
    return None


@pytest.fixture(scope="module")
def callables():
    return _callables()


@pytest.mark.parametrize("name,args", _quoted_calls())
def test_every_quoted_signature_is_true(name, args, callables):
    candidates = [obj for key, obj in callables.items() if key == name or key.endswith("." + name)]
    assert candidates, f"{name} is not a callable of jaxlic"
    why = [_fits(obj, args) for obj in candidates]
    assert None in why, f"`{name}({args})`: {why[0]}"


def test_the_signature_check_reads_the_doc():
    calls = dict(_quoted_calls())
    assert {"jaxlic.zoo.load", "jaxlic.entropy.quantize.quantize", "EntropyBottleneck"} <= set(calls)
    assert _arguments("x, mode, *, offset=None, rng=None, filters=(3,3), img [H,W,3], cfg.exact") == [
        ("x", None),
        ("mode", None),
        ("offset", "None"),
        ("rng", "None"),
        ("filters", "(3,3)"),
        ("img", None),
    ]
    assert _fits(lambda a, b=2: None, "a, b=3") == "b defaults to 2, not 3"
    assert _fits(lambda a: None, "c") is not None
    assert _fits(lambda a, b=2: None, "..., b=3") is None  # a call


def test_the_doc_names_the_default_model():
    """`zoo.load()` without a name loads the registry's default model, which the doc names."""
    assert f'DEFAULT_MODEL`, "{registry.DEFAULT_MODEL}"' in DOC


def test_the_doc_names_every_eval_script_and_no_other():
    """Every script of eval/ is in one of the doc's lists ("benchmark scripts (...)", "CompressAI
    halves (...)") or named by its path, and every name there is a script."""
    lists = re.findall(r"(?:benchmark scripts|CompressAI halves) \(([^)]*)\)", DOC.replace("\n", " "))
    named = {name.strip() for text in lists for name in text.split(",")}
    named |= set(re.findall(r"`eval/(\w+)\.py`", DOC))
    scripts = {p.stem for p in (ROOT / "eval").glob("*.py")} - {"__init__"}
    assert len(lists) == 2 and len(named) > 15
    assert named == scripts, f"not in the doc: {sorted(scripts - named)}; gone: {sorted(named - scripts)}"
