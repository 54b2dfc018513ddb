#!/usr/bin/env python3
"""Finds import circles between the Rust files of one folder (ARCHITECTURE.md: "no two
files of one folder import each other", directly or around a loop).

For every crate of the workspace it builds the module tree from each crate root
(src/lib.rs, src/main.rs, src/bin/*.rs, tests/*.rs, benches/*.rs), reads every
`crate::`, `super::`, `self::` path and every `use` of a child module (inline test
modules included, with `super::` resolved from where they stand), and resolves each path
to the file that defines the deepest module it names. An edge A -> B is kept when A and
B are different files of the same folder and neither is that folder's module root
(`mod.rs`, `lib.rs`, `main.rs`): the root declares and re-exports its children, which is
structure, not a dependency between siblings. A strongly connected group of two or more
files is a circle. Exit status 1 when there is one.

Usage: scripts/import_cycles.py [workspace-dir]   (prints every file's sibling imports
with -v)
"""

import os
import re
import sys

ROOTS = ("mod.rs", "lib.rs", "main.rs")


def strip_code(text):
    """Removes comments, string and char literals, keeping line structure."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    if text[i] == "\n":
                        out.append("\n")
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = text.find('"' + m.group(1), i + len(m.group(0)))
            end = n if end < 0 else end + 1 + len(m.group(1))
            out.append('""' + "\n" * text.count("\n", i, end))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'":
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:])
            if m:
                out.append("' '")
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def child_file(parent_file, name):
    """Where `mod name;` declared in parent_file lives."""
    d = os.path.dirname(parent_file)
    base = os.path.basename(parent_file)
    if base not in ROOTS and not is_crate_root(parent_file):
        d = os.path.join(d, base[:-3])
    for cand in (os.path.join(d, name + ".rs"), os.path.join(d, name, "mod.rs")):
        if os.path.isfile(cand):
            return cand
    return None


_crate_roots = set()


def is_crate_root(path):
    return path in _crate_roots


def use_trees(text):
    """Yields the expanded paths of every `use` statement in text."""
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        for p in expand(m.group(1).replace("\n", " ")):
            yield p


def expand(tree):
    tree = tree.strip()
    tree = re.sub(r"\s+as\s+\w+$", "", tree)
    i = tree.find("{")
    if i < 0:
        return [tree.replace(" ", "")]
    prefix = tree[:i].strip().rstrip(":").replace(" ", "")
    inner = tree[i + 1:tree.rfind("}")]
    parts, depth, cur = [], 0, ""
    for c in inner:
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += c == "{"
        depth -= c == "}"
        cur += c
    parts.append(cur)
    res = []
    for p in parts:
        if not p.strip():
            continue
        for e in expand(p):
            res.append(prefix + "::" + e if prefix else e)
    return res


class Crate:
    def __init__(self, root_file):
        self.modules = {}  # tuple path -> file
        self.inline = {}  # tuple path -> file, for inline `mod x { }` blocks
        self.refs = []  # (file, module path where the reference stands, path string)
        self.walk(root_file, ())

    def walk(self, path, modpath):
        self.modules[modpath] = path
        text = strip_code(open(path, encoding="utf-8").read())
        # Inline modules: track `mod name {` blocks by brace depth.
        stack = [(modpath, -1)]
        depth = 0
        pos = 0
        tokens = re.finditer(r"\bmod\s+(\w+)\s*([;{])|[{}]|\b(?:crate|super|self)(?:::\w+)+|\buse\s+[^;]+;", text)
        for t in tokens:
            s = t.group(0)
            if s == "{":
                depth += 1
            elif s == "}":
                depth -= 1
                if len(stack) > 1 and depth == stack[-1][1]:
                    stack.pop()
            elif s.startswith("mod") and t.group(1):
                name, kind = t.group(1), t.group(2)
                cur = stack[-1][0]
                if kind == ";":
                    f = child_file(path, name) if cur == modpath else None
                    if f:
                        self.walk(f, cur + (name,))
                else:
                    self.inline[cur + (name,)] = path
                    self.modules.setdefault(cur + (name,), path)
                    depth += 1
                    stack.append((cur + (name,), depth - 1))
            elif s.startswith("use"):
                for p in use_trees(s):
                    self.refs.append((path, stack[-1][0], p))
            else:
                self.refs.append((path, stack[-1][0], s))
            pos = t.end()

    def resolve(self, at, p):
        segs = [x for x in p.split("::") if x and x != "*"]
        if not segs:
            return None
        if segs[0] == "crate":
            base, segs = (), segs[1:]
        elif segs[0] in ("super", "self"):
            base = at
            while segs and segs[0] in ("super", "self"):
                if segs[0] == "super":
                    base = base[:-1]
                segs = segs[1:]
        elif at + (segs[0],) in self.modules:
            base = at  # a relative path into a child module
        else:
            return None
        best = self.modules.get(base)
        cur = base
        for s in segs:
            cur = cur + (s,)
            if cur in self.modules:
                best = self.modules[cur]
            else:
                break
        return best


def crate_roots(ws):
    roots = []
    for dirpath, dirnames, filenames in os.walk(ws):
        dirnames[:] = [d for d in dirnames if d not in ("target", ".git") and not d.startswith(".")]
        if "Cargo.toml" not in filenames:
            continue
        if "[package]" not in open(os.path.join(dirpath, "Cargo.toml")).read():
            continue
        for rel in ("src/lib.rs", "src/main.rs"):
            f = os.path.join(dirpath, rel)
            if os.path.isfile(f):
                roots.append(f)
        for sub in ("src/bin", "tests", "benches", "examples"):
            d = os.path.join(dirpath, sub)
            if os.path.isdir(d):
                roots += [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".rs")]
    return roots


def sccs(graph):
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    verbose = "-v" in sys.argv
    ws = os.path.abspath(args[0] if args else os.path.join(os.path.dirname(__file__), ".."))
    roots = crate_roots(ws)
    _crate_roots.update(roots)
    graph, files = {}, set()
    for r in roots:
        c = Crate(r)
        files.update(c.modules.values())
        for f, at, p in c.refs:
            t = c.resolve(at, p)
            if not t or t == f or os.path.dirname(t) != os.path.dirname(f):
                continue
            if os.path.basename(t) in ROOTS or os.path.basename(f) in ROOTS or t in _crate_roots or f in _crate_roots:
                continue
            graph.setdefault(f, set()).add(t)
    if verbose:
        for f in sorted(graph):
            print(os.path.relpath(f, ws), "->", ", ".join(sorted(os.path.basename(t) for t in graph[f])))
    circles = [sorted(c) for c in sccs(graph) if len(c) > 1]
    for c in circles:
        print("import circle:", ", ".join(os.path.relpath(f, ws) for f in c))
    print(f"{len(files)} files read, {sum(len(v) for v in graph.values())} sibling imports, {len(circles)} circles")
    return 1 if circles else 0


if __name__ == "__main__":
    sys.exit(main())
