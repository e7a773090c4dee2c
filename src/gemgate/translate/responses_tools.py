"""OpenAI Responses tools and tool_choice -> Gemini tools and toolConfig (the door's side).

Function tools become ``functionDeclarations`` (their JSON Schema sent whole as
``parametersJsonSchema``). A ``namespace`` tool's functions are flattened into declarations
of their own, named ``<namespace>__<name>``; a ``custom`` tool (free-form input, such as
Codex's ``apply_patch`` with its Lark grammar) becomes a declaration taking one string
argument, ``input``, whose description carries the grammar. :class:`ToolMap` keeps which
declaration is which client tool, so that a call renders back as the item the client
declared (``function_call`` with its ``namespace``, or ``custom_tool_call``).

Built-in tools map to Gemini's equivalent (``web_search`` -> ``googleSearch``,
``code_interpreter`` -> ``codeExecution``). Gemini 2.x refuses them next to function
declarations, so there they are left out when functions come with them; a model whose
catalog entry says ``mixed_tools`` gets both. A tool Gemini cannot run (``local_shell``,
``file_search``, ...) is left out with a warning, never refused: agents send them by default.
``tool_choice`` ``allowed_tools`` narrows the declarations to the tools it lists.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from gemgate.errors import InvalidArgument

_WEB_SEARCH = frozenset(
    {"web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11"}
)
_CHOICE = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
SEPARATOR = "__"  # between a namespace and its function's name
MAX_NAME = 64  # Gemini's limit on a function name
_NOT_NAME = re.compile(r"[^A-Za-z0-9_.:-]")
CUSTOM_ARG = "input"


def _bad(path: str, desc: str) -> InvalidArgument:
    return InvalidArgument.field(path, desc)


def gemini_name(name: str, namespace: str | None = None) -> str:
    """The declaration name Gemini accepts for a client's tool: letters, digits, ``_ . : -``,
    starting with a letter or ``_``, at most 64 characters (longer names end in a hash)."""
    full = f"{namespace}{SEPARATOR}{name}" if namespace else name
    safe = _NOT_NAME.sub("_", full)
    if not safe or not (safe[0].isalpha() or safe[0] == "_"):
        safe = "_" + safe
    if len(safe) > MAX_NAME:
        digest = hashlib.sha256(full.encode()).hexdigest()[:8]
        safe = f"{safe[: MAX_NAME - 9]}_{digest}"
    return safe


@dataclass(frozen=True, slots=True)
class ToolRef:
    """A client's tool as it declared it."""

    name: str
    namespace: str | None = None
    custom: bool = False


@dataclass(slots=True)
class ToolMap:
    """Gemini declaration names -> the client's tools."""

    tools: dict[str, ToolRef] = field(default_factory=dict)

    def add(self, ref: ToolRef) -> str:
        name = gemini_name(ref.name, ref.namespace)
        self.tools[name] = ref
        return name

    def client(self, name: str) -> ToolRef:
        """The client's tool a Gemini call names (an unknown name is a plain function)."""
        return self.tools.get(name) or ToolRef(name)


@dataclass(slots=True)
class Tools:
    """The Gemini side of a request's tools."""

    tools: list[dict[str, Any]]  # Gemini's tools array
    map: ToolMap
    builtins: list[tuple[str, str, dict[str, Any]]]  # (path, client type, Gemini tool) kept

    @property
    def declared(self) -> set[str]:
        return set(self.map.tools)


def read_tools(value: Any, warnings: list[str], *, mixed: bool = False) -> Tools:
    """Gemini's tools for the Responses ``tools`` array (``mixed``: the model takes built-in
    tools next to function declarations)."""
    out = Tools([], ToolMap(), [])
    if value is None:
        return out
    if not isinstance(value, list):
        raise _bad("tools", "must be an array")
    declarations: list[dict[str, Any]] = []
    builtin: list[tuple[str, str, dict[str, Any]]] = []
    for i, tool in enumerate(value):
        path = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _bad(path, "must be an object")
        kind = tool.get("type")
        if kind in ("function", "custom"):
            declarations.append(_declaration(tool, path, None, None, out.map))
        elif kind == "namespace":
            declarations.extend(_namespace(tool, path, out.map, warnings))
        elif kind in _WEB_SEARCH:
            if tool.get("external_web_access") is False:
                warnings.append(f"{path}: {kind} without live web access has no equivalent on "
                                "this model and was left out")
            else:
                builtin.append((path, kind, {"googleSearch": {}}))
        elif kind == "code_interpreter":
            builtin.append((path, kind, {"codeExecution": {}}))
        else:
            name = tool.get("name")
            what = f"{kind} tool {name!r}" if isinstance(name, str) else f"{kind} tool"
            warnings.append(f"{path}: the {what} cannot run on this model and was left out")
    if declarations:
        out.tools.append({"functionDeclarations": declarations})
    for path, kind, gemini in builtin:
        if declarations and not mixed:
            # Gemini 2.x refuses built-in tools next to function declarations ("Multiple
            # tools are supported only when they are all search tools").
            warnings.append(f"{path}: {kind} cannot be combined with function tools on this "
                            "model and was left out")
        elif gemini not in out.tools:
            out.tools.append(gemini)
            out.builtins.append((path, kind, gemini))
    return out


def _namespace(tool: dict[str, Any], path: str, names: ToolMap, warnings: list[str]) -> list[dict[str, Any]]:
    namespace = tool.get("name")
    if not isinstance(namespace, str) or not namespace:
        raise _bad(f"{path}.name", "must be a non-empty string")
    about = tool.get("description")
    inner = tool.get("tools")
    if not isinstance(inner, list):
        raise _bad(f"{path}.tools", "must be an array")
    out = []
    for j, member in enumerate(inner):
        where = f"{path}.tools[{j}]"
        if not isinstance(member, dict):
            raise _bad(where, "must be an object")
        if member.get("type") not in ("function", "custom"):
            warnings.append(f"{where}: a {member.get('type')!r} tool in namespace {namespace!r} "
                            "cannot run on this model and was left out")
            continue
        out.append(_declaration(member, where, namespace, about if isinstance(about, str) else None, names))
    return out


def _declaration(
    tool: dict[str, Any], path: str, namespace: str | None, about: str | None, names: ToolMap
) -> dict[str, Any]:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise _bad(f"{path}.name", "must be a non-empty string")
    description = tool.get("description")
    if description is not None and not isinstance(description, str):
        raise _bad(f"{path}.description", "must be a string")
    custom = tool.get("type") == "custom"
    decl: dict[str, Any] = {"name": names.add(ToolRef(name, namespace, custom))}
    texts = [t for t in (f"{namespace}: {about}" if namespace and about else None, description) if t]
    if custom:
        decl["parametersJsonSchema"] = {
            "type": "object",
            "properties": {CUSTOM_ARG: {"type": "string", "description": _custom_input(tool, path)}},
            "required": [CUSTOM_ARG],
        }
    else:
        params = tool.get("parameters")
        if params is not None:
            if not isinstance(params, dict):
                raise _bad(f"{path}.parameters", "must be a JSON Schema object")
            decl["parametersJsonSchema"] = params
    if texts:
        decl["description"] = "\n\n".join(texts)
    return decl


def _custom_input(tool: dict[str, Any], path: str) -> str:
    """What a custom tool's one string argument holds: free text, or text in its grammar."""
    fmt = tool.get("format")
    if fmt is None or (isinstance(fmt, dict) and fmt.get("type") == "text"):
        return "The tool's whole input, as free-form text."
    if not isinstance(fmt, dict) or fmt.get("type") != "grammar":
        raise _bad(f"{path}.format", "must be a text or grammar format")
    definition = fmt.get("definition")
    if not isinstance(definition, str):
        raise _bad(f"{path}.format.definition", "must be a string")
    syntax = fmt.get("syntax") or "lark"
    return (f"The tool's whole input, as raw text (not JSON) that follows this {syntax} "
            f"grammar exactly:\n{definition}")


def _listed(choice: dict[str, Any]) -> list[str]:
    """The Gemini names of the function and custom tools ``allowed_tools`` lists."""
    listed = choice.get("tools")
    if not isinstance(listed, list):
        raise _bad("tool_choice.tools", "must be an array")
    names = []
    for j, tool in enumerate(listed):
        if not isinstance(tool, dict):
            raise _bad(f"tool_choice.tools[{j}]", "must be an object")
        name = tool.get("name")
        if tool.get("type") in ("function", "custom") and isinstance(name, str):
            namespace = tool.get("namespace")
            names.append(gemini_name(name, namespace if isinstance(namespace, str) else None))
        elif tool.get("type") == "namespace" and isinstance(name, str):
            names.append(gemini_name("", name))  # a prefix: every function of the namespace
    return names


def narrow(request_tools: Tools, choice: Any) -> None:
    """``allowed_tools``: keep only the declarations (and built-in tools) it lists."""
    if not isinstance(choice, dict) or choice.get("type") != "allowed_tools":
        return
    listed = _listed(choice)
    kinds = {t.get("type") for t in choice.get("tools") or () if isinstance(t, dict)}

    def allowed(name: str) -> bool:
        return any(name == n or (n.endswith(SEPARATOR) and name.startswith(n)) for n in listed)

    kept: list[dict[str, Any]] = []
    for tool in request_tools.tools:
        if "functionDeclarations" in tool:
            decls = [d for d in tool["functionDeclarations"] if allowed(d["name"])]
            if decls:
                kept.append({"functionDeclarations": decls})
        elif any(k in kinds for k in _builtin_kinds(tool, request_tools)):
            kept.append(tool)
    request_tools.tools[:] = kept
    for name in [n for n in request_tools.map.tools if not allowed(n)]:
        del request_tools.map.tools[name]


def _builtin_kinds(tool: dict[str, Any], request_tools: Tools) -> list[str]:
    return [kind for _path, kind, gemini in request_tools.builtins if gemini == tool]


def tool_config(choice: Any, declared: set[str], warnings: list[str]) -> dict[str, Any] | None:
    """Gemini's toolConfig for ``tool_choice`` (None: Gemini's default, AUTO)."""
    if choice is None or not declared:
        return None  # (allowed_tools listing nothing declared: the request has no functions)
    if isinstance(choice, str):
        if choice not in _CHOICE:
            raise _bad("tool_choice", "must be auto, none, required or a tool choice object")
        fcc: dict[str, Any] = {"mode": _CHOICE[choice]}
    elif isinstance(choice, dict) and choice.get("type") in ("function", "custom"):
        name = choice.get("name")
        namespace = choice.get("namespace")
        flat = gemini_name(name, namespace if isinstance(namespace, str) else None) if isinstance(name, str) else ""
        if flat not in declared:
            raise _bad("tool_choice.name", "must name a function in tools")
        fcc = {"mode": "ANY", "allowedFunctionNames": [flat]}
    elif isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        mode = choice.get("mode", "auto")
        if mode not in ("auto", "required"):
            raise _bad("tool_choice.mode", "must be auto or required")
        # The declarations were narrowed to the listed tools (see narrow).
        fcc = {"mode": "AUTO"}
        if mode == "required":
            fcc = {"mode": "ANY", "allowedFunctionNames": sorted(declared)}
    elif isinstance(choice, dict) and isinstance(choice.get("type"), str):
        warnings.append(f"tool_choice: {choice['type']!r} cannot be forced on this model; "
                        "the model chooses")
        return None
    else:
        raise _bad("tool_choice", "must be auto, none, required or a tool choice object")
    return {"functionCallingConfig": fcc}
