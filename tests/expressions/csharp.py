"""Compile and run APIM policy expressions offline with Mono's C# compiler (``mcs``, package mono-mcs).

Each policy becomes a class in one generated C# file: one method per expression (a ``when``
condition returns bool, every other expression object), and a ``Run`` method that walks the inbound
section as APIM would for the statements the importer writes (``set-variable``, ``choose``/``when``/
``return-response``; any other expression is evaluated and its value recorded). The model of the
``context`` variable and the Newtonsoft subset are in csharp/*.cs. One ``mcs`` invocation compiles
everything; one ``mono`` invocation runs a whole table.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

HERE = Path(__file__).resolve().parent
SOURCES = tuple(HERE / "csharp" / name for name in ("Context.cs", "Newtonsoft.cs", "Runner.cs"))
ALLOWED_TYPES = HERE / "allowed_types.md"
PACKAGES = "mono-mcs libmono-system-xml-linq4.0-cil libmono-system-numerics4.0-cil"
INSTALL_HINT = f"install with: sudo apt-get install -y {PACKAGES} (Debian, Ubuntu; make test does it as root)"
LANGUAGE = "7"  # APIM expressions are C# 7
REFERENCES = ("System.dll", "System.Core.dll", "System.Numerics.dll", "System.Xml.dll", "System.Xml.Linq.dll")
USINGS = ("System", "System.Collections.Generic", "System.Linq", "System.Text",
          "System.Text.RegularExpressions", "System.Xml.Linq", "Newtonsoft.Json", "Newtonsoft.Json.Linq",
          "PolicyContext")


def tools() -> tuple[str, str] | str:
    """(mcs, mono) paths, or the reason they cannot be used."""
    mcs, mono = shutil.which("mcs"), shutil.which("mono")
    if mcs is None or mono is None:
        missing = " and ".join(n for n, p in (("mcs", mcs), ("mono", mono)) if p is None)
        return f"the C# compiler for policy expressions is missing ({missing} not on PATH); {INSTALL_HINT}"
    framework = Path(mono).resolve().parents[1] / "lib" / "mono" / "4.5"
    absent = [r for r in REFERENCES if not (framework / r).is_file()]
    if absent:
        return f"Mono lacks {', '.join(absent)} (looked in {framework}); {INSTALL_HINT}"
    return mcs, mono


# ---------------------------------------------------------------------------------------------
# Expressions in a policy


@dataclass(frozen=True)
class Expression:
    where: str  # e.g. inbound/choose[1]/when[2]/@condition
    text: str  # "@(...)" or "@{...}"
    returns: str  # "bool" for a condition, else "object"

    @property
    def body(self) -> str:
        inner = self.text[2:-1]
        return f"return ({inner});" if self.text.startswith("@(") else inner


def _is_expression(value: str) -> bool:
    v = value.strip()
    return (v.startswith("@(") and v.endswith(")")) or (v.startswith("@{") and v.endswith("}"))


def _path(el: Any) -> str:
    parts = []
    while el is not None and el.getparent() is not None:
        parent = el.getparent()
        same = [c for c in parent if c.tag == el.tag]
        parts.append(el.tag if len(same) == 1 else f"{el.tag}[{same.index(el) + 1}]")
        el = parent
    return "/".join(reversed(parts))


def expressions(xml: str) -> list[Expression]:
    """Every ``@(…)`` / ``@{…}`` attribute value or text of the policy, in document order. A value that
    holds ``@(`` or ``@{`` without being one whole expression is refused (APIM would not evaluate it)."""
    root = etree.fromstring(xml.encode())
    found = []
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        values = [(f"@{k}", v) for k, v in el.attrib.items()]
        values += [("text()", el.text)] if el.text and el.text.strip() else []
        for name, value in values:
            if _is_expression(value):
                returns = "bool" if el.tag == "when" and name == "@condition" else "object"
                found.append(Expression(f"{_path(el)}/{name}", value.strip(), returns))
            elif "@(" in value or "@{" in value:
                raise ValueError(f"{_path(el)}/{name}: {value!r} holds an expression that is not the "
                                 "whole value")
    return found


# ---------------------------------------------------------------------------------------------
# Generating C#


def _literal(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch < " " or ch > "~":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


class _Policy:
    def __init__(self, name: str, xml: str) -> None:
        self.name = name
        self.exprs = expressions(xml)
        self._ids = {e.where: f"E{i}" for i, e in enumerate(self.exprs)}
        self.root = etree.fromstring(xml.encode())

    def _value(self, el: Any, attr: str) -> str:
        """C# for an attribute's value: a call of its expression method, or the literal."""
        where = f"{_path(el)}/@{attr}"
        value = el.get(attr, "")
        return f"{self._ids[where]}(r.Context)" if where in self._ids else _literal(value)

    def _statements(self, parent: Any, indent: str) -> list[str]:
        lines: list[str] = []
        for el in parent:
            if not isinstance(el.tag, str):
                continue
            if el.tag == "set-variable":
                lines.append(f"{indent}r.Set({_literal(el.get('name', ''))}, {self._value(el, 'value')});")
            elif el.tag == "choose":
                keyword = "if"
                for branch in el:
                    if branch.tag == "when":
                        lines.append(f"{indent}{keyword} ({self._value(branch, 'condition')})")
                        keyword = "else if"
                    elif branch.tag == "otherwise":
                        lines.append(f"{indent}else")
                    else:
                        continue
                    lines += [f"{indent}{{", *self._statements(branch, indent + "    "), f"{indent}}}"]
            elif el.tag == "return-response":
                status = el.find("set-status")
                code = status.get("code", "200") if status is not None else "200"
                lines.append(f"{indent}{{ r.Status = {int(code)}; return; }}")
            else:
                prefix = _path(el) + "/"
                lines += [f"{indent}r.Value({_literal(e.where)}, {self._ids[e.where]}(r.Context));"
                          for e in self.exprs if e.where.startswith(prefix)]
        return lines

    def source(self) -> str:
        out = [f"public static class {self.name}", "{"]
        for e in self.exprs:
            out += [f"    public static {e.returns} {self._ids[e.where]}(IContext context)", "    {",
                    f'#line 1 "{self.name}/{e.where}"', e.body, "#line default", "    }"]
        inbound = self.root.find("inbound")
        out += ["    public static void Run(PolicyRunner.Run r)", "    {",
                *(self._statements(inbound, "        ") if inbound is not None else []), "    }", "}"]
        return "\n".join(out)


def generate(policies: dict[str, str]) -> str:
    """The C# of ``{class name: policy XML}``: namespace Generated, one class per policy."""
    body = "\n\n".join(_Policy(name, xml).source() for name, xml in policies.items())
    usings = "\n".join(f"using {u};" for u in USINGS)
    return f"{usings}\n\nnamespace Generated\n{{\n{body}\n}}\n"


# ---------------------------------------------------------------------------------------------
# Compiling and running


@dataclass(frozen=True)
class Compiled:
    ok: bool
    output: str  # the compiler's messages
    seconds: float
    exe: Path

    def errors(self) -> list[str]:
        return [line for line in self.output.splitlines() if ": error " in line]


def compile_policies(policies: dict[str, str], workdir: Path, mcs: str) -> Compiled:
    """One ``mcs`` run over the model and every policy's class."""
    workdir.mkdir(parents=True, exist_ok=True)
    generated = workdir / "Generated.cs"
    generated.write_text(generate(policies), encoding="utf-8")
    exe = workdir / "policies.exe"
    cmd = [mcs, f"-langversion:{LANGUAGE}", "-nologo", "-optimize-", f"-out:{exe}",
           *(f"-r:{r}" for r in REFERENCES), *map(str, SOURCES), str(generated)]
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    return Compiled(done.returncode == 0, done.stdout + done.stderr, time.monotonic() - started, exe)


def _mono(mono: str, exe: Path, *args: str) -> list[dict[str, Any]]:
    env = {**os.environ, "MONO_ENV_OPTIONS": ""}
    done = subprocess.run([mono, "--debug", str(exe), *args], capture_output=True, text=True, timeout=300,
                          check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"mono {exe.name} {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def run(mono: str, exe: Path, policies: Iterable[str], requests: Sequence[dict[str, Any]],
        workdir: Path) -> list[dict[str, Any]]:
    """Every policy on every request: {policy, request, error, status, variables, values} each."""
    job = workdir / "job.json"
    job.write_text(json.dumps({"policies": list(policies), "requests": list(requests)}), encoding="utf-8")
    return _mono(mono, exe, "run", str(job))


def allowed_types() -> dict[str, list[str]]:
    """Microsoft's table of .NET types allowed in expressions (allowed_types.md): {type: members}."""
    out: dict[str, list[str]] = {}
    for line in ALLOWED_TYPES.read_text(encoding="utf-8").splitlines():
        m = re.fullmatch(r"\|\s*([A-Za-z][\w.]*(?:\\?<[^>]*>)?)\s*\|\s*(.+?)\s*\|", line.strip())
        if not m or m.group(1) == "Type":
            continue
        name = m.group(1).replace("\\", "")
        if "<" in name:
            base, args = name.split("<", 1)
            name = f"{base}`{args.count(',') + 1}"
        members = m.group(2)
        out[name] = [members] if members.startswith("All") else [x.strip() for x in members.split(",")]
    return out


def check_types(mono: str, exe: Path, workdir: Path) -> list[dict[str, Any]]:
    """{method, disallowed} for every expression method of every compiled policy."""
    allowed = allowed_types()
    if "System.Nullable" in allowed:
        allowed["System.Nullable`1"] = allowed["System.Nullable"]
    spec = workdir / "allowed.json"
    # PolicyContext is the model of the context variable (the reference's second list).
    spec.write_text(json.dumps({"types": allowed, "namespaces": ["PolicyContext"]}), encoding="utf-8")
    return _mono(mono, exe, "types", str(spec))
