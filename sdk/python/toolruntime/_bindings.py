# SPDX-License-Identifier: Apache-2.0
"""Typed tool bindings: `from toolruntime.tools import everything`.

The host generates each namespace's module from the tools' schemas
(src/gateway/bindings.c) and sends its source over the gateway
("get_bindings", docs/gateway-protocol.md); an import hook here turns it into
the module toolruntime.tools.<name>.  No files are mounted: this works on
every backend the gateway reaches.  Each generated function checks its
arguments against the tool's input schema in the sandbox, so that a wrong
type names the argument before any call leaves the sandbox, then calls the
tool with run_tool (counted and limited on the host like any call).
"""

import json
import sys
import types
from importlib.machinery import ModuleSpec

PREFIX = "toolruntime.tools."


class _Unset:
    """The default of an optional argument the caller did not give."""

    __slots__ = ()

    def __repr__(self):
        return "..."


_UNSET = _Unset()

_TYPES = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
    "null": (type(None),),
}


def _type_ok(value, name):
    py = _TYPES.get(name)
    if py is None:
        return True
    if isinstance(value, bool) and name in ("integer", "number"):
        return False
    if name == "integer" and isinstance(value, float) and value.is_integer():
        return True
    return isinstance(value, py)


def _describe(value):
    return type(value).__name__


def _check(schema, value, path, depth=0):
    """Return an error message for `value` against `schema`, or None.  The
    keywords the host's validator knows; anything else passes (the host
    validates again before the tool runs)."""
    if not isinstance(schema, dict) or depth > 32:
        return None
    t = schema.get("type")
    if isinstance(t, str) and not _type_ok(value, t):
        return "%s: expected %s, got %s" % (path, t, _describe(value))
    if isinstance(t, list) and t and not any(_type_ok(value, x) for x in t if isinstance(x, str)):
        return "%s: expected %s, got %s" % (path, " or ".join(map(str, t)), _describe(value))
    if "enum" in schema and isinstance(schema["enum"], list) and value not in schema["enum"]:
        return "%s: must be one of %s, got %r" % (path, ", ".join(map(repr, schema["enum"][:16])), value)
    if "const" in schema and value != schema["const"]:
        return "%s: must be %r" % (path, schema["const"])
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for key, bad in (("minimum", lambda v, m: v < m), ("maximum", lambda v, m: v > m),
                         ("exclusiveMinimum", lambda v, m: v <= m), ("exclusiveMaximum", lambda v, m: v >= m)):
            m = schema.get(key)
            if isinstance(m, (int, float)) and not isinstance(m, bool) and bad(value, m):
                return "%s: %r violates %s %r" % (path, value, key, m)
    if isinstance(value, str):
        if isinstance(schema.get("minLength"), int) and len(value) < schema["minLength"]:
            return "%s: shorter than %d characters" % (path, schema["minLength"])
        if isinstance(schema.get("maxLength"), int) and len(value) > schema["maxLength"]:
            return "%s: longer than %d characters" % (path, schema["maxLength"])
    if isinstance(value, (list, tuple)):
        if isinstance(schema.get("minItems"), int) and len(value) < schema["minItems"]:
            return "%s: fewer than %d items" % (path, schema["minItems"])
        if isinstance(schema.get("maxItems"), int) and len(value) > schema["maxItems"]:
            return "%s: more than %d items" % (path, schema["maxItems"])
        items = schema.get("items")
        for i, v in enumerate(value):
            e = _check(items, v, "%s[%d]" % (path, i), depth + 1)
            if e:
                return e
    if isinstance(value, dict):
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        for k in schema.get("required") or []:
            if isinstance(k, str) and k not in value:
                return "%s: missing required property %r" % (path, k)
        for k, v in value.items():
            if k in props:
                e = _check(props[k], v, "%s.%s" % (path, k), depth + 1)
            elif schema.get("additionalProperties") is False:
                e = "%s: unexpected property %r" % (path, k)
            else:
                e = _check(schema.get("additionalProperties"), v, "%s.%s" % (path, k), depth + 1)
            if e:
                return e
    return None


class _Spec:
    """What a generated function needs: the tool id, its Python name and its
    input schema (JSON text, parsed on first use)."""

    __slots__ = ("tool_id", "name", "_text", "_schema")

    def __init__(self, tool_id, name, schema_text):
        self.tool_id = tool_id
        self.name = name
        self._text = schema_text
        self._schema = None

    @property
    def schema(self):
        if self._schema is None:
            try:
                self._schema = json.loads(self._text)
            except ValueError:
                self._schema = {}
        return self._schema


def _call(spec, kwargs):
    from toolruntime import ToolError

    tools = sys.modules["toolruntime.tools"]

    args = {k: v for k, v in kwargs.items() if v is not _UNSET}
    schema = spec.schema
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    for key, value in args.items():
        err = _check(props.get(key), value, "argument %r" % key)
        if err:
            raise ToolError("invalid_arguments", "%s: %s" % (spec.name, err))
    # The object-level keywords (required, additionalProperties) on the whole
    # argument set; the properties were checked one by one above, with
    # messages that name the argument, and pass again here.
    err = _check(schema, args, "arguments")
    if err:
        raise ToolError("invalid_arguments", "%s: %s" % (spec.name, err))
    return tools.run_tool(spec.tool_id, args)


# Plain classes, not importlib.abc's: that module costs an import every
# snippet would pay; the import system needs only these methods.
class _Loader:
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        name = module.__name__[len(PREFIX):]
        # The gateway of the current toolruntime.tools (install() may have
        # replaced it since the hook was registered).
        reply = sys.modules["toolruntime.tools"]._gateway.call("get_bindings", {"module": name})
        module.__file__ = "<toolruntime bindings for %s>" % reply.get("namespace", name)
        exec(compile(reply["source"], module.__file__, "exec"), module.__dict__)


class _Finder:
    """Finds toolruntime.tools.<name> (one level: names are identifiers)."""

    def __init__(self):
        self._loader = _Loader()

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(PREFIX):
            return None
        rest = fullname[len(PREFIX):]
        if not rest.isidentifier():
            return None
        return ModuleSpec(fullname, self._loader)


class ToolsModule(types.ModuleType):
    """toolruntime.tools: the gateway's operations (tools.run_tool(...), as
    before) and, as a package, one module per tool namespace."""

    def __init__(self, gateway):
        super().__init__("toolruntime.tools", "Tool gateway operations and typed tool bindings.")
        self.__path__ = []
        self.__package__ = "toolruntime.tools"
        self._gateway = gateway

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return getattr(self._gateway, name)
        except AttributeError:
            pass
        if name.startswith("_"):
            raise AttributeError(name)
        import importlib

        from toolruntime import ToolError

        try:
            return importlib.import_module(PREFIX + name)
        except (ImportError, ToolError) as e:
            raise AttributeError(name) from e

    def __dir__(self):
        return sorted(set(super().__dir__()) | {n for n in dir(self._gateway) if not n.startswith("_")})


def install(gateway):
    """Make `toolruntime.tools` the module above and register the hook."""
    mod = ToolsModule(gateway)
    sys.modules["toolruntime.tools"] = mod
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
    return mod
