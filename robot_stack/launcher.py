"""Run ROS 2 YAML launch files without launch/launch_ros (neither is on PyPI).

`robot-stack launch FILE [name:=value ...]` reads the subset of the ROS 2 YAML launch
syntax that our launch/ files use and starts every node the way launch_ros would, so a
node cannot tell which launcher started it and the same files work with `ros2 launch`.

Supported actions: `arg` (name, default, description, choices), `let` (name, value),
`node` (pkg, exec, name, namespace, param, remap, args, ros_args, output, env, respawn,
respawn_delay), `include` (file, arg), `group` (a list of actions, or `children` with
`scoped`), `push-ros-namespace` / `push_ros_namespace` (namespace); `if` / `unless` on
every action. Substitutions: `$(var NAME)`, `$(env NAME [DEFAULT])`,
`$(optenv NAME [DEFAULT])`, `$(find-pkg-share PKG)`, `$(dirname)`; they nest
(`$(find-pkg-share $(var pkg))`) and mix into text (`$(var ns)/camera`).

Required nodes. Real `ros2 launch` rejects unknown keys in a node (launch_yaml's
`assert_entity_completely_parsed`), and its YAML frontend offers no `on_exit`, so a
`required: true` key would make our files invalid there. Instead: every node is required
unless it sets `respawn: true`. When a required node exits, with any code, the whole
graph is brought down and `run` returns non-zero; a respawning node is restarted after
`respawn_delay` seconds, as launch does.

Supervision (robot_stack/supervision.py): every node gets SIGKILL from the kernel if the launcher dies, and a
launcher started by `supervision.start_graph` (every CLI that runs a graph) stops its nodes, SIGTERM then
SIGKILL after ORPHAN_GRACE seconds, as soon as the process that started it is gone, however it died.

Differences from launch_ros, all deliberate: named parameters are passed as
`-p name:=value` rather than through a temporary parameter file (same effect for a
one-node process, and DESIGN.md's contract); all node output is printed, prefixed with
`[name]`, whatever `output` says; an included file gets its own scope, so its `let`s and
`arg`s do not leak into the including file. As in launch, a relative include path is
relative to the working directory: write `$(dirname)/other.yaml` or use find-pkg-share.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import yaml

from robot_stack.dds import prepare_graph
from robot_stack.supervision import ParentLink, die_with_parent

PROG = "robot-stack launch"
OWN_PACKAGE = "robot_stack"
CONDITION_KEYS = {"if", "unless"}
NODE_KEYS = {"pkg", "exec", "name", "namespace", "param", "remap", "args", "ros_args", "output", "env",
             "respawn", "respawn_delay"}
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_NODE_NAME_RE = re.compile(rf"^{_NAME}$")
_NAMESPACE_RE = re.compile(rf"^/({_NAME}(/{_NAME})*)?$")
# When the CLI that started the graph dies: SIGTERM to every node, SIGKILL this long after. Nodes' SIGTERM
# handlers stop within a few spins (nodes/common.py); the arm's own watchdog (0.2 s) holds it meanwhile.
ORPHAN_GRACE = 1.5
PARENT_GONE_STATUS = 128 + signal.SIGHUP    # as for a hung-up terminal: the controlling side went away


class LaunchError(Exception):
    """A problem with a launch file, its arguments or its executables: shown as one line, no traceback."""


@dataclass
class NodeSpec:
    """One process to start: everything resolved, ready for `subprocess`."""
    pkg: str
    exec: str
    name: str | None
    namespace: str | None
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)   # added to the launcher's environment
    output: str = "log"
    required: bool = True
    respawn: bool = False
    respawn_delay: float = 0.0

    @property
    def label(self) -> str:
        return self.name or os.path.basename(self.exec)


# --------------------------------------------------------------------------- ament index

def ament_prefixes() -> list[str]:
    return [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]


def source_tree_share(pkg: str) -> str | None:
    """Share directory of our own package when no ament index knows it (a pip install).

    A checkout or editable install: the repository root, two levels above this file,
    holds launch/ just as `<prefix>/share/robot_stack` does after a colcon build.
    A regular pip install: setup.py's data_files put launch/ under `<sys.prefix>/share/robot_stack`.
    """
    if pkg != OWN_PACKAGE:
        return None
    for root in (Path(__file__).resolve().parent.parent, Path(sys.prefix, "share", OWN_PACKAGE)):
        if (root / "launch").is_dir():
            return str(root)
    return None


def find_package_share(pkg: str) -> str:
    """`$(find-pkg-share PKG)`: the first AMENT_PREFIX_PATH prefix whose ament index lists PKG."""
    for prefix in ament_prefixes():
        if Path(prefix, "share", "ament_index", "resource_index", "packages", pkg).exists():
            return str(Path(prefix, "share", pkg))
    share = source_tree_share(pkg)
    if share is None:
        raise LaunchError(f"package '{pkg}' not found in the ament index "
                          f"(AMENT_PREFIX_PATH={os.environ.get('AMENT_PREFIX_PATH', '')!r})")
    return share


def find_executable(pkg: str, exe: str) -> str:
    """`<prefix>/lib/<pkg>/<exec>` like launch_ros; else a pip console script on PATH or next to python."""
    if not pkg:
        found = shutil.which(exe)
        if found is None:
            raise LaunchError(f"executable '{exe}' not found on PATH")
        return found
    for prefix in ament_prefixes():
        candidate = Path(prefix, "lib", pkg, exe)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    # Console scripts of a venv land next to its python even when the venv is not activated.
    found = shutil.which(exe) or shutil.which(exe, path=sysconfig.get_path("scripts"))
    if found is None:
        raise LaunchError(f"executable '{exe}' of package '{pkg}' not found: not in <prefix>/lib/{pkg}/ "
                          f"of any AMENT_PREFIX_PATH entry {ament_prefixes()} and not on PATH")
    return found


# --------------------------------------------------------------------------- substitutions

@dataclass
class _Scope:
    """Launch configurations and the pushed ROS namespace visible to an action."""
    file: Path
    vars: dict[str, str]
    namespace: str | None = None

    def child(self, file: Path | None = None) -> "_Scope":
        return _Scope(file or self.file, dict(self.vars), self.namespace)


def _closing_paren(text: str, start: int) -> int:
    """Index of the `)` closing the `$(` whose body starts at `start` (nesting and quotes respected)."""
    depth, quote, i = 1, None, start
    while i < len(text):
        ch = text[i]
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif text.startswith("$(", i):
            depth, i = depth + 1, i + 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise LaunchError(f"unterminated substitution in {text!r}")


def split_words(text: str) -> list[str]:
    """Split at whitespace outside `$(...)` and quotes; outer quotes are removed from a word."""
    words, current, depth, quote = [], "", 0, None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif text.startswith("$(", i):
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif ch.isspace() and depth == 0:
            if current:
                words.append(current)
            current = ""
            continue
        current += ch
    if current:
        words.append(current)
    return [w[1:-1] if len(w) >= 2 and w[0] == w[-1] and w[0] in "'\"" else w for w in words]


def substitute(text: str, scope: _Scope) -> str:
    """Expand every `$(...)` in `text`, innermost first."""
    out, i = [], 0
    while (j := text.find("$(", i)) >= 0:
        end = _closing_paren(text, j + 2)
        out += [text[i:j], _evaluate(text[j + 2:end], scope)]
        i = end + 1
    return "".join(out) + text[i:]


def _evaluate(body: str, scope: _Scope) -> str:
    words = split_words(body)
    if not words:
        raise LaunchError("empty substitution $()")
    kind, args = words[0], [substitute(w, scope) for w in words[1:]]
    if kind == "var" and len(args) == 1:
        if args[0] not in scope.vars:
            raise LaunchError(f"$(var {args[0]}): no launch argument or let named '{args[0]}' ({scope.file})")
        return scope.vars[args[0]]
    if kind in ("env", "optenv") and len(args) in (1, 2):
        default = args[1] if len(args) == 2 else ("" if kind == "optenv" else None)
        value = os.environ.get(args[0], default)
        if value is None:
            raise LaunchError(f"$(env {args[0]}): environment variable '{args[0]}' is not set and has no default")
        return value
    if kind == "find-pkg-share" and len(args) == 1:
        return find_package_share(args[0])
    if kind == "dirname" and not args:
        return str(scope.file.parent)
    raise LaunchError(f"unsupported substitution $({body}) in {scope.file}; "
                      "supported: var NAME, env NAME [DEFAULT], optenv NAME [DEFAULT], find-pkg-share PKG, dirname")


def parse_bool(text: str, what: str) -> bool:
    """launch's rule for conditions: true/false/1/0, any case."""
    value = text.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise LaunchError(f"{what}: expected true, false, 1 or 0, got {text!r}")


def _text(value: Any, what: str) -> str:
    """A YAML scalar as launch sees it: text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise LaunchError(f"{what}: expected a string, got {value!r}")


# --------------------------------------------------------------------------- parameters

def render_param_value(value: Any) -> str:
    """YAML text of a parameter for `-p name:=value`: rcl parses it back to the same typed value."""
    # Non-ASCII is written as escapes: pyyaml emits some (U+0085) raw where they read back as line breaks.
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"))
    return text.removesuffix("\n...\n").rstrip("\n")


def _coerce(text: str) -> Any:
    """launch_ros types a string parameter by reading it as YAML ("true" -> bool, "3" -> int)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    scalar = (bool, int, float, str)
    if isinstance(value, scalar) or (isinstance(value, list) and value and all(isinstance(v, scalar) for v in value)):
        return _uniform(value) if isinstance(value, list) else value
    return text


def _uniform(values: list) -> list:
    """rcl arrays are homogeneous: ints mixed with floats become floats, as in launch_ros."""
    if any(isinstance(v, float) for v in values) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                         for v in values):
        return [float(v) for v in values]
    return values


def _param_value(raw: Any, scope: _Scope, what: str) -> Any:
    if isinstance(raw, bool | int | float):
        return raw
    if isinstance(raw, str):
        return _coerce(substitute(raw, scope))
    if isinstance(raw, list) and raw:
        return _uniform([substitute(v, scope) if isinstance(v, str) else _scalar(v, what) for v in raw])
    raise LaunchError(f"{what}: a parameter value must be a scalar or a non-empty list, got {raw!r}")


def _scalar(value: Any, what: str) -> Any:
    if isinstance(value, bool | int | float):
        return value
    raise LaunchError(f"{what}: list elements must be scalars, got {value!r}")


def _named_params(entry: dict, scope: _Scope, prefix: str, where: str) -> Iterator[tuple[str, Any]]:
    """(name, value) pairs of a `param` entry; nested `param` lists join names with '.'."""
    _check_keys("param", entry, {"name", "value", "param"}, where, conditions=False)
    name = prefix + substitute(_text(_required(entry, "name", "param", where), f"{where}: param name"), scope)
    if ("value" in entry) == ("param" in entry):
        raise LaunchError(f"{where}: param '{name}' needs exactly one of 'value' or nested 'param'")
    if "value" in entry:
        yield name, _param_value(entry["value"], scope, f"{where}: param '{name}'")
        return
    for child in _mappings(entry["param"], "param", where):
        yield from _named_params(child, scope, name + ".", where)


def _param_arguments(entries: Any, scope: _Scope, where: str) -> list[str]:
    """`-p name:=value` and `--params-file FILE` in declaration order: later ones win in rcl."""
    out: list[str] = []
    for entry in _mappings(entries, "param", where):
        if "from" in entry:
            _check_keys("param", entry, {"from"}, where, conditions=False)
            path = Path(substitute(_text(entry["from"], f"{where}: param from"), scope)).absolute()
            if not path.is_file():
                raise LaunchError(f"{where}: parameter file not found: {path}")
            out += ["--params-file", str(path)]
        else:
            for name, value in _named_params(entry, scope, "", where):
                out += ["-p", f"{name}:={render_param_value(value)}"]
    return out


# --------------------------------------------------------------------------- namespaces and command line

def join_namespace(base: str | None, ns: str | None) -> str | None:
    """launch_ros's prefix_namespace: a relative namespace nests under the pushed one, an absolute one replaces it."""
    if ns is None:
        combined = base
    elif not base or ns.startswith("/"):
        combined = ns
    else:
        combined = ("" if base == "/" else base) + "/" + ns
    if combined is None:
        return None
    if combined != "/":
        combined = combined.rstrip("/")
    return combined if combined.startswith("/") else "/" + combined


def node_command(executable: str, *, arguments: Sequence[str] = (), ros_arguments: Sequence[str] = (),
                 name: str | None = None, namespace: str | None = None,
                 params: Sequence[str] = (), remaps: Sequence[tuple[str, str]] = ()) -> list[str]:
    """The argv launch_ros builds: exec, args, [--ros-args ros_args], --ros-args, name, ns, params, remaps."""
    cmd = [executable, *arguments]
    if ros_arguments:
        cmd += ["--ros-args", *ros_arguments]
    cmd.append("--ros-args")
    if name is not None:
        cmd += ["-r", f"__node:={name}"]
    if namespace is not None:
        cmd += ["-r", f"__ns:={namespace}"]
    cmd += list(params)
    for src, dst in remaps:
        cmd += ["-r", f"{src}:={dst}"]
    return cmd


# --------------------------------------------------------------------------- loading

def _required(body: dict, key: str, kind: str, where: str) -> Any:
    if key not in body:
        raise LaunchError(f"{where}: `{kind}` needs '{key}'")
    return body[key]


def _name(body: dict, kind: str, where: str) -> str:
    """Names must be YAML strings, as in launch_yaml: an unquoted `on` or `yes` reads as a boolean."""
    name = _required(body, "name", kind, where)
    if not isinstance(name, str):
        raise LaunchError(f"{where}: `{kind}` name {name!r} is not a string "
                          "(quote it: YAML reads on/yes/no as booleans)")
    return name


def _check_keys(kind: str, body: Any, allowed: set[str], where: str, conditions: bool = True) -> None:
    """Reject keys real `ros2 launch` would reject, so our files stay valid there."""
    if not isinstance(body, dict):
        raise LaunchError(f"{where}: `{kind}` expects a mapping, got {body!r}")
    allowed = allowed | CONDITION_KEYS if conditions else allowed
    unknown = sorted(set(body) - allowed)
    if unknown:
        hint = ""
        if kind == "node" and "required" in unknown:
            hint = " (nodes are required unless they set respawn: true; `required` is not valid ROS 2 launch)"
        if kind == "group" and {"namespace", "push-ros-namespace", "push_ros_namespace"} & set(unknown):
            hint = " (put a push-ros-namespace action first in the group's children)"
        raise LaunchError(f"{where}: unexpected key(s) {', '.join(unknown)} in `{kind}`; "
                          f"valid: {', '.join(sorted(allowed))}{hint}")


def _mappings(value: Any, kind: str, where: str) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise LaunchError(f"{where}: `{kind}` expects a list of mappings, got {value!r}")
    return value


def _read_launch_file(path: Path) -> list:
    if not path.is_file():
        raise LaunchError(f"launch file not found: {path}")
    if path.suffix not in (".yaml", ".yml"):
        raise LaunchError(f"{path}: only YAML launch files are supported")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise LaunchError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict) or set(data) != {"launch"}:
        raise LaunchError(f"{path}: a launch file is a mapping with the single key 'launch'")
    return _mappings(data["launch"] or [], "launch", str(path))


class _Loader:
    """Walks the action tree once, in order, collecting nodes and declared argument names."""

    def __init__(self) -> None:
        self.nodes: list[NodeSpec] = []
        self.declared: set[str] = set()
        self._files: list[Path] = []

    def file(self, path: Path, scope: _Scope) -> None:
        path = path.resolve()
        if path in self._files:
            raise LaunchError(f"include cycle: {' -> '.join(map(str, [*self._files, path]))}")
        self._files.append(path)
        self.actions(_read_launch_file(path), scope)
        self._files.pop()

    def actions(self, items: list, scope: _Scope) -> None:
        handlers = {"arg": self.arg, "let": self.let, "node": self.node, "include": self.include,
                    "group": self.group, "push-ros-namespace": self.push_namespace,
                    "push_ros_namespace": self.push_namespace}
        for item in _mappings(items, "actions", str(scope.file)):
            if len(item) != 1 or next(iter(item)) not in handlers:
                raise LaunchError(f"{scope.file}: unknown action {item!r}; supported: {', '.join(handlers)}")
            kind, body = next(iter(item.items()))
            if _condition_holds(kind, body, scope):
                handlers[kind](body, scope)

    def arg(self, body: Any, scope: _Scope) -> None:
        where = str(scope.file)
        _check_keys("arg", body, {"name", "default", "description", "choices"}, where)
        name = _name(body, "arg", where)
        self.declared.add(name)
        if name not in scope.vars:
            if "default" not in body:
                raise LaunchError(f"launch argument '{name}' is required (no default): pass {name}:=VALUE ({where})")
            scope.vars[name] = substitute(_text(body["default"], f"{where}: arg '{name}'"), scope)
        choices = [_text(c, f"{where}: arg '{name}' choices") for c in body.get("choices") or []]
        if choices and scope.vars[name] not in choices:
            raise LaunchError(f"launch argument {name}:={scope.vars[name]} is not one of {', '.join(choices)}")

    def let(self, body: Any, scope: _Scope) -> None:
        where = str(scope.file)
        _check_keys("let", body, {"name", "value"}, where)
        name = _name(body, "let", where)
        scope.vars[name] = substitute(_text(_required(body, "value", "let", where), f"{where}: let '{name}'"), scope)

    def push_namespace(self, body: Any, scope: _Scope) -> None:
        where = str(scope.file)
        _check_keys("push-ros-namespace", body, {"namespace"}, where)
        ns = substitute(_text(_required(body, "namespace", "push-ros-namespace", where), where), scope)
        scope.namespace = join_namespace(scope.namespace, ns)

    def group(self, body: Any, scope: _Scope) -> None:
        where = str(scope.file)
        if isinstance(body, list):
            self.actions(body, scope.child())
            return
        _check_keys("group", body, {"children", "scoped"}, where)
        scoped = parse_bool(substitute(_text(body.get("scoped", True), where), scope), f"{where}: group scoped")
        self.actions(_required(body, "children", "group", where) or [], scope.child() if scoped else scope)

    def include(self, body: Any, scope: _Scope) -> None:
        where = str(scope.file)
        _check_keys("include", body, {"file", "arg"}, where)
        path = Path(substitute(_text(_required(body, "file", "include", where), where), scope))
        if not path.is_file():
            raise LaunchError(f"included launch file not found: {path} (included from {where})")
        inner = scope.child(path.resolve())
        for entry in _mappings(body.get("arg") or [], "arg", where):
            _check_keys("include arg", entry, {"name", "value"}, where, conditions=False)
            name = _name(entry, "include arg", where)
            inner.vars[name] = substitute(_text(_required(entry, "value", "include arg", where), where), scope)
        self.file(path, inner)

    def node(self, body: Any, scope: _Scope) -> None:
        self.nodes.append(_node_spec(body, scope))


def _condition_holds(kind: str, body: Any, scope: _Scope) -> bool:
    if not isinstance(body, dict):
        return True
    holds = True
    for key, wanted in (("if", True), ("unless", False)):
        if key in body:
            text = substitute(_text(body[key], f"{scope.file}: {kind} {key}"), scope)
            holds = holds and parse_bool(text, f"{scope.file}: `{key}` of {kind}") == wanted
    return holds


def _pairs(body: dict, key: str, first: str, second: str, scope: _Scope, where: str) -> list[tuple[str, str]]:
    """`remap` (from, to) and `env` (name, value) entries, substituted."""
    return [tuple(substitute(_text(_required(entry, k, key, where), f"{where}: {key} {k}"), scope)
                  for k in (first, second))
            for entry in _mappings(body.get(key, []), key, where)]


def _words(body: dict, key: str, scope: _Scope, where: str) -> list[str]:
    """`args` and `ros_args`: split first, then substitute, so a substituted value stays one argument."""
    return [substitute(w, scope) for w in split_words(_text(body.get(key, ""), f"{where}: {key}"))]


def _node_spec(body: Any, scope: _Scope) -> NodeSpec:
    where = str(scope.file)
    _check_keys("node", body, NODE_KEYS, where)

    def sub(key: str, default: str | None = None) -> str | None:
        return substitute(_text(body[key], f"{where}: node {key}"), scope) if key in body else default

    pkg, exe = sub("pkg", ""), sub("exec")
    if exe is None:
        raise LaunchError(f"{where}: `node` needs 'exec'")
    where = f"{where}: node {pkg}/{exe}"
    name, namespace = sub("name"), join_namespace(scope.namespace, sub("namespace"))
    if name is not None and not _NODE_NAME_RE.match(name):
        raise LaunchError(f"{where}: invalid node name {name!r}")
    if namespace is not None and not _NAMESPACE_RE.match(namespace):
        raise LaunchError(f"{where}: invalid namespace {namespace!r}")
    respawn = parse_bool(sub("respawn", "false"), f"{where}: respawn")
    try:
        respawn_delay = float(sub("respawn_delay", "0"))
    except ValueError:
        raise LaunchError(f"{where}: respawn_delay must be a number of seconds") from None
    cmd = node_command(find_executable(pkg, exe), arguments=_words(body, "args", scope, where),
                       ros_arguments=_words(body, "ros_args", scope, where), name=name, namespace=namespace,
                       params=_param_arguments(body["param"], scope, where) if "param" in body else [],
                       remaps=_pairs(body, "remap", "from", "to", scope, where))
    return NodeSpec(pkg=pkg, exec=exe, name=name, namespace=namespace, cmd=cmd,
                    env=dict(_pairs(body, "env", "name", "value", scope, where)), output=sub("output", "log"),
                    required=not respawn, respawn=respawn, respawn_delay=respawn_delay)


def load_launch(path: str | os.PathLike, launch_args: dict[str, str] | None = None) -> list[NodeSpec]:
    """Evaluate a launch file with `name:=value` arguments into the nodes to start."""
    launch_args = dict(launch_args or {})
    path = Path(path)
    loader = _Loader()
    loader.file(path, _Scope(path.resolve(), dict(launch_args)))
    unknown = sorted(set(launch_args) - loader.declared)
    if unknown:
        valid = ", ".join(sorted(loader.declared)) or "none (the file declares no arguments)"
        raise LaunchError(f"unknown launch argument(s) {', '.join(unknown)} for {path}; valid arguments: {valid}")
    return loader.nodes


# --------------------------------------------------------------------------- running

class _StopRequest:
    """Set from signal handlers; only plain attribute writes happen there (no locks)."""
    signum: int | None = None
    count: int = 0
    parent: ParentLink | None = None

    @property
    def parent_gone(self) -> bool:
        return self.parent is not None and self.parent.check()

    @property
    def requested(self) -> bool:
        return self.signum is not None or self.parent_gone


@contextlib.contextmanager
def _stop_on_signals(parent: ParentLink | None = None) -> Iterator[_StopRequest]:
    """Ctrl-C, SIGTERM and SIGHUP ask for an orderly shutdown; a repeat skips to the next escalation.
    With a parent link, the parent's death asks for a quick one (its parent-death signal is armed here)."""
    stop = _StopRequest()
    stop.parent = parent

    def handler(signum, frame):
        stop.signum = stop.signum or signum
        stop.count += 1

    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    disarm = parent.arm_signal() if parent is not None else None
    try:
        yield stop
    finally:
        if disarm is not None:
            disarm()
        for sig, old in previous.items():
            signal.signal(sig, old)


_print_lock = threading.Lock()


def _say(text: str, stream: str = "stderr") -> None:
    # A dead parent that read our output leaves a broken pipe behind: the shutdown must go on regardless.
    with _print_lock, contextlib.suppress(OSError, ValueError):
        print(text, file=getattr(sys, stream), flush=True)


def _pump(pipe, label: str, stream: str) -> None:
    # Drain to the end even when our own output is gone: a node blocked on a full pipe would stop its work.
    for raw in iter(pipe.readline, b""):
        _say(f"[{label}] {raw.decode(errors='replace').rstrip()}", stream)
    pipe.close()


class _Process:
    """One node's subprocess, in its own process group so signals reach the node's own children too."""

    def __init__(self, spec: NodeSpec, label: str) -> None:
        self.spec, self.label = spec, label
        self.popen: subprocess.Popen | None = None
        self.readers: list[threading.Thread] = []
        self.restart_at: float | None = None
        self.finished = False

    def start(self) -> None:
        env = {"PYTHONUNBUFFERED": "1", **os.environ, **self.spec.env}   # Python nodes' lines appear at once
        try:
            # A new session keeps the terminal's Ctrl-C away from nodes: the launcher forwards it in order.
            # SIGKILL on the launcher's death: then nobody is left to stop the node in order, and a node that
            # outlived its launcher (a policy server driving the arm) is what this must never leave behind.
            # Started from run()'s thread, which outlives every node (the signal follows the starting thread).
            self.popen = subprocess.Popen(self.spec.cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, start_new_session=True,
                                          preexec_fn=die_with_parent(signal.SIGKILL))
        except OSError as exc:
            raise LaunchError(f"could not start node '{self.label}' ({self.spec.cmd[0]}): {exc}") from None
        self.readers = [threading.Thread(target=_pump, args=(pipe, self.label, stream), daemon=True)
                        for pipe, stream in ((self.popen.stdout, "stdout"), (self.popen.stderr, "stderr"))]
        for reader in self.readers:
            reader.start()
        _say(f"{PROG}: started {self.label} (pid {self.popen.pid})")

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)


def _labels(nodes: list[NodeSpec]) -> list[str]:
    """`[name]` prefixes, made unique the way launch numbers its processes."""
    seen: dict[str, int] = {}
    labels = []
    for spec in nodes:
        seen[spec.label] = seen.get(spec.label, 0) + 1
        labels.append(spec.label if seen[spec.label] == 1 else f"{spec.label}-{seen[spec.label]}")
    return labels


def _exit_status(code: int) -> int:
    """A shell-style status: 128+N for a signal, and never 0 for a graph that went down."""
    return 128 - code if code < 0 else (code or 1)


def _supervise(procs: list[_Process], stop: _StopRequest) -> int:
    """Wait until a signal arrives, the parent dies or a required node exits; restart respawning nodes meanwhile."""
    while not stop.requested:
        now = time.monotonic()
        for p in procs:
            if p.restart_at is not None and now >= p.restart_at:
                p.restart_at = None
                p.start()
            elif p.restart_at is None and not p.finished and (code := p.popen.poll()) is not None:
                if p.spec.required:
                    _say(f"{PROG}: required node '{p.label}' exited with code {code}; shutting down all nodes")
                    return _exit_status(code)
                if p.spec.respawn:
                    _say(f"{PROG}: node '{p.label}' exited with code {code}; respawning in {p.spec.respawn_delay:g} s")
                    p.restart_at = now + p.spec.respawn_delay
                else:
                    _say(f"{PROG}: node '{p.label}' exited with code {code}")
                    p.finished = True
        time.sleep(0.05)
    if stop.parent_gone:
        _say(f"{PROG}: the process that started this graph is gone; shutting down all nodes")
        return PARENT_GONE_STATUS
    _say(f"{PROG}: got {signal.Signals(stop.signum).name}; shutting down all nodes")
    return 128 + stop.signum


def _wait_until_exited(procs: list[_Process], timeout: float, stop: _StopRequest) -> None:
    deadline, signals_seen, orphaned = time.monotonic() + timeout, stop.count, stop.parent_gone
    while (any(p.alive() for p in procs) and time.monotonic() < deadline and stop.count == signals_seen
           and stop.parent_gone == orphaned):
        time.sleep(0.02)


def _shutdown(procs: list[_Process], sigint_timeout: float, sigterm_timeout: float, stop: _StopRequest,
              orphan_grace: float = ORPHAN_GRACE) -> None:
    """SIGINT, then SIGTERM, then SIGKILL to whatever is still running, like ros2 launch.

    Once the parent is gone (before or during this), SIGTERM and SIGKILL after `orphan_grace`: no one waits
    for an orderly stop any more, and every second the graph runs on is a second of an arm moving unwatched."""
    orderly = [(signal.SIGINT, sigint_timeout), (signal.SIGTERM, sigterm_timeout), (signal.SIGKILL, 0)]
    quick = [(signal.SIGTERM, orphan_grace), (signal.SIGKILL, 0)]
    steps = quick if stop.parent_gone else orderly
    while steps:
        (sig, timeout), steps = steps[0], steps[1:]
        alive = [p for p in procs if p.alive()]
        if not alive:
            break
        if sig != signal.SIGINT:
            _say(f"{PROG}: {', '.join(p.label for p in alive)} still running; sending {sig.name}")
        for p in alive:
            p.signal_group(sig)
        orphaned = stop.parent_gone
        _wait_until_exited(alive, timeout, stop)
        if stop.parent_gone and not orphaned and sig != signal.SIGKILL:
            _say(f"{PROG}: the process that started this graph is gone; stopping the nodes now")
            steps = quick
    for p in procs:
        if p.popen is not None:
            p.popen.wait()
            for reader in p.readers:
                reader.join(timeout=2.0)   # a grandchild may hold the pipe open; do not hang on it


def run(nodes: list[NodeSpec], *, sigint_timeout: float = 5.0, sigterm_timeout: float = 5.0,
        parent: ParentLink | None = None, orphan_grace: float = ORPHAN_GRACE) -> int:
    """Start every node and supervise the graph; returns 0 only for an empty graph.

    parent: the link to the process that started this launcher (supervision.start_graph); when that process
    dies the graph is stopped within `orphan_grace` seconds and run returns PARENT_GONE_STATUS."""
    if not nodes:
        _say(f"{PROG}: no nodes to start")
        return 0
    procs = [_Process(spec, label) for spec, label in zip(nodes, _labels(nodes))]
    with _stop_on_signals(parent) as stop:
        try:
            for p in procs:
                if not stop.requested:
                    p.start()
            code = _supervise(procs, stop)
        finally:
            _shutdown(procs, sigint_timeout, sigterm_timeout, stop, orphan_grace)
    return code


# --------------------------------------------------------------------------- command line

class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise LaunchError(message)


def parse_launch_arguments(items: list[str]) -> dict[str, str]:
    args = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise LaunchError(f"launch arguments are name:=value, got {item!r}")
        args[name] = value
    return args


def resolve_launch_file(name: str) -> Path:
    """A path, or a file name (with or without .yaml) in our package's launch/ folder."""
    path = Path(name)
    if path.is_file():
        return path
    try:
        launch_dir = Path(find_package_share(OWN_PACKAGE), "launch")
    except LaunchError:
        raise LaunchError(f"launch file '{name}' not found") from None
    if len(path.parts) == 1:
        for candidate in (name, f"{name}.yaml", f"{name}.launch.yaml"):
            if (launch_dir / candidate).is_file():
                return launch_dir / candidate
    available = ", ".join(sorted(p.name for p in launch_dir.glob("*.yaml"))) or "none"
    raise LaunchError(f"launch file '{name}' not found (not a file, and not in {launch_dir}; available: {available})")


def main(argv: list[str] | None = None) -> int:
    """`robot-stack launch FILE [name:=value ...]`."""
    parser = _Parser(prog=PROG, description="Run a ROS 2 YAML launch file without ros2 launch.")
    parser.add_argument("file", help="a launch file path, or a name in robot_stack's launch/ folder")
    parser.add_argument("launch_args", nargs="*", metavar="name:=value")
    parser.add_argument("--dry-run", action="store_true", help="print each node's command line, start nothing")
    parent = ParentLink.from_env()      # first: the nodes must not inherit the link's variable
    try:
        opts = parser.parse_args(argv)
        nodes = load_launch(resolve_launch_file(opts.file), parse_launch_arguments(opts.launch_args))
        if opts.dry_run:
            for spec, label in zip(nodes, _labels(nodes)):
                env = " ".join(f"{k}={shlex.quote(v)}" for k, v in spec.env.items())
                print(f"[{label}] {env + ' ' if env else ''}{shlex.join(spec.cmd)}")
            return 0
        # The nodes' DDS settings (robot_stack/dds.py), and the shared memory SIGKILLed processes left: a dead
        # participant's segment holds 33.5 MiB of /dev/shm (RAM) until someone removes it.
        cleaned = prepare_graph()
        if cleaned.removed:
            _say(f"{PROG}: {cleaned}")
        return run(nodes, parent=parent)
    except LaunchError as exc:
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except SystemExit as exc:                 # --help
        return exc.code if isinstance(exc.code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
