# Copyright (c) berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mutation testing of the allocator core and the controller's choices with mutmut 3: ``make mutation``.

1. Copy the checkout to .build/mutation/work/ansible_collections/berth/ports
   (the import path the code and the tests use) and write mutmut's setup.cfg
   there from tests/mutation/mutation.cfg.
2. ``mutmut run`` in .build/mutation/work, from scratch (its mutants/ copy
   and results are deleted first), or, with ``--resume``, continuing the
   last run: mutmut keeps every verdict whose function is unchanged, tests
   what is left untested, and every mutant that survived is tested again (a
   test may have been added for it since). A run continued is as good as one
   run as long as tests were only added in between; the report lists each
   leg (commit, mode, time). A change to the test selection makes mutmut
   itself start over.
3. Read mutmut's results and print, per file: mutants, message-text mutants
   excluded, killed, equivalent, survived, score; then every excluded or
   equivalent mutant and every survivor with its diff. The whole report is
   also written to .build/mutation/report.txt and .build/mutation/summary.json.

A survivor is equivalent (cannot change what any caller observes) when
tests/mutation/equivalent.txt lists it with the reason, or by one rule: the
SQL text handed to ``execute()`` changed only in letter case, when that text
holds no quoted literal and no named parameter (SQLite reads keywords and
identifiers in any case). A killed mutant is never counted as equivalent,
and an entry of equivalent.txt that matches no survivor is reported as
stale.

Message-text mutants are excluded by one rule, applied to each mutant's
change (its function, original against mutated, as Python syntax trees).
A mutant is excluded when every difference lies in the message argument of
a ``PortsError(...)`` or ``StoreError(...)`` call that a ``raise`` or
``return`` statement hands back (a string literal, an f-string, a string
literal formatted with ``%``, ``+`` or ``.format()``, or a choice between two
such messages, ``"a" if x else "b"``), and is either

* a literal of that message's text (not of its operands, not of the choice's
  condition) changed into another string with the same ``%``/``{}``
  placeholders (``"owner %r..."`` -> ``"XXowner %r...XX"``),
* or the whole message replaced by None or another string.

Such a mutant only changes what an operator reads; the exception type,
when it is raised and what it leaves behind are unchanged. Anything else
counts: a raise removed, ``from exc`` dropped, the exception type changed,
a formatting operand changed (``% (text,)`` -> ``% None`` can raise
TypeError instead), a placeholder broken (``"%d"`` -> ``"%D"``).

Exit status: 0 when every file reaches min_score, 1 when one is below it, 2 when
mutmut could not run.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, OrderedDict
from typing import List, NamedTuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORK = os.path.join(ROOT, ".build", "mutation", "work")
PREFIX = "ansible_collections/berth/ports"
COLL = os.path.join(WORK, PREFIX)
PLUGINS = "plugins"
# A section of mutation.cfg names a file of plugins/module_utils/ by its name
# alone (request.py), any other file by its path under plugins/
# (plugin_utils/fleet_ports.py).
DEFAULT_FOLDER = "module_utils"
PLUGIN = "berth_mutation_plugin.py"
EQUIVALENT = os.path.join(HERE, "equivalent.txt")
HISTORY = os.path.join(ROOT, ".build", "mutation", "legs.json")

ERROR_TYPES = {"PortsError", "StoreError"}

# mutmut's exit codes per mutant (mutmut.stats.status_by_exit_code).
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          35: "suspicious", 36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout",
          37: "type check", -11: "segfault", -9: "segfault", None: "not checked"}
# Killed: a test failed, or the mutant hung or crashed the test process.
KILLED = {"killed", "timeout", "segfault", "crashed", "type check"}


def status_of(code):
    """mutmut's exit code as a status; a test process ended by any other signal
    (SIGALRM left to its default by a mutant, say) crashed: the mutant was seen."""
    if code in STATUS:
        return STATUS[code]
    if isinstance(code, int) and code < 0:
        return "crashed"
    return "suspicious"


def log(text=""):
    print(text, flush=True)


# ------------------------------------------------------------------ setup
def source_of(section):
    """The file a section of mutation.cfg mutates, relative to the checkout."""
    folder_and_name = section if "/" in section else "%s/%s" % (DEFAULT_FOLDER, section)
    return "%s/%s" % (PLUGINS, folder_and_name)


def tracked(path):
    return subprocess.run(["git", "-C", ROOT, "ls-files", "--error-unmatch", path],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode == 0


def read_config(path):
    parser = configparser.ConfigParser()
    with open(path, encoding="utf-8") as handle:
        parser.read_file(handle)
    targets = OrderedDict()
    skipped = []
    for section in parser.sections():
        if section == "run":
            continue
        source = source_of(section)
        tests = [t for t in parser.get(section, "tests").split() if t]
        if tracked(source):
            targets[section] = tests
        else:
            skipped.append(source)
    return targets, skipped, parser.getfloat("run", "min_score", fallback=97.0)


def prepare(targets, resume):
    """The collection copy, mutmut's config and the pytest plugin, under WORK
    (mutmut's mutants/ and its verdicts are dropped unless ``resume``)."""
    if not resume:
        shutil.rmtree(os.path.join(WORK, "mutants"), ignore_errors=True)
    subprocess.run([sys.executable, os.path.join(ROOT, "tests", "utils", "sync_collection.py"), ROOT, COLL],
                   check=True, stdout=subprocess.DEVNULL)
    shutil.copy2(os.path.join(HERE, PLUGIN), os.path.join(WORK, PLUGIN))
    tests = []
    for names in targets.values():
        tests.extend(t for t in names if t not in tests and os.path.exists(os.path.join(COLL, t)))
    # mutmut copies its source paths whole (and mutates only the targets in
    # them); every other folder of plugins/ is copied as it is.
    folders = sorted(set(os.path.dirname(source_of(name)) for name in targets))
    plugins = sorted(d for d in os.listdir(os.path.join(COLL, PLUGINS)) if "%s/%s" % (PLUGINS, d) not in folders)

    def lines(items):
        return "".join("\n    %s" % item for item in items)

    with open(os.path.join(WORK, "setup.cfg"), "w", encoding="utf-8") as handle:
        handle.write(
            "# Written by tests/mutation/run.py; edit tests/mutation/mutation.cfg instead.\n"
            "[mutmut]\n"
            "source_paths =%s\n" % lines("%s/%s/" % (PREFIX, folder) for folder in folders)
            + "only_mutate =%s\n" % lines("%s/%s" % (PREFIX, source_of(name)) for name in targets)
            + "also_copy =%s\n" % lines([PLUGIN, PREFIX + "/tests/"] + ["%s/plugins/%s/" % (PREFIX, d) for d in plugins])
            + "pytest_add_cli_args = -p no:cacheprovider -p berth_mutation_plugin\n"
            + "pytest_add_cli_args_test_selection =%s\n" % lines("%s/%s" % (PREFIX, t) for t in tests)
            + "use_git_change_detection = false\n"
        )
    return tests


def retry_survivors(targets, equivalent):
    """Mark every survivor of the kept results untested, so mutmut tests it
    again (mutmut itself re-tests only mutants of changed functions); not the
    ones in ``equivalent``, which no test can kill."""
    retried = 0
    for name in targets:
        meta_path = os.path.join(WORK, "mutants", PREFIX, source_of(name) + ".meta")
        if not os.path.exists(meta_path):
            continue
        with open(meta_path, encoding="utf-8") as handle:
            meta = json.load(handle)
        codes = meta["exit_code_by_key"]
        for key, code in codes.items():
            if code is not None and status_of(code) not in KILLED and key not in equivalent:
                codes[key] = None
                retried += 1
        with open(meta_path, "w", encoding="utf-8") as handle:
            json.dump(meta, handle, indent=4)
    return retried


def git_state():
    """The commit under test, and whether the work tree differs from it."""
    def git(*args):
        return subprocess.run(["git", "-C", ROOT] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, check=False).stdout.strip()
    return git("rev-parse", "--short", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no"))


def record_leg(resume, seconds, state, stopped=None):
    """Append this run (``state``: git_state() when it started) to the list of
    legs that made the current results."""
    legs = []
    if resume and os.path.exists(HISTORY):
        with open(HISTORY, encoding="utf-8") as handle:
            legs = json.load(handle)
    commit, dirty = state
    mode = "resumed" if resume else "from scratch"
    if stopped is not None:
        mode += " (stopped: mutmut exit %d; resume it)" % stopped
    legs.append({"commit": commit, "dirty": dirty, "mode": mode,
                 "date": time.strftime("%Y-%m-%d"), "seconds": seconds, "mutmut": mutmut_version()})
    with open(HISTORY, "w", encoding="utf-8") as handle:
        json.dump(legs, handle, indent=2)
    return legs


def mutmut_version():
    try:
        from importlib.metadata import version
        return version("mutmut")
    except Exception:  # noqa: BLE001 (any failure: the version is only reported)
        return "unknown"


def run_mutmut(jobs, log_path):
    mutmut = os.path.join(os.path.dirname(sys.executable), "mutmut")
    if not os.path.exists(mutmut):
        mutmut = shutil.which("mutmut") or "mutmut"
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the mutated copy, not the checkout, must be imported
    with open(log_path, "w", encoding="utf-8") as out:
        return subprocess.run([mutmut, "run", "--max-children", str(jobs)], cwd=WORK, env=env,
                              stdout=out, stderr=subprocess.STDOUT, check=False).returncode


# ------------------------------------------------------- message-text rule
def _message_literals(node):
    """The string literals whose text is the message ``node`` builds: a string
    literal, the literal parts of an f-string, the literal being formatted (with
    ``%``, ``+`` or ``.format()``), or either message of a choice between two
    (``"a" if x else "b"``). Empty when ``node`` is not such a message. The
    operands being formatted are not message text: changing a key read there can
    raise instead."""
    if isinstance(node, ast.Constant):
        return [node] if isinstance(node.value, str) else []
    if isinstance(node, ast.JoinedStr):
        return [part for part in node.values if isinstance(part, ast.Constant)] or [node]
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        left = _message_literals(node.left)
        if left and isinstance(node.op, ast.Add):
            return left + _message_literals(node.right)
        return left
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return _message_literals(node.func.value)
    if isinstance(node, ast.IfExp):
        body, orelse = _message_literals(node.body), _message_literals(node.orelse)
        return body + orelse if body and orelse else []
    return []


def _is_message(node):
    return bool(_message_literals(node))


_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[a-zA-Z%]|\{[^{}]*\}")


def _same_placeholders(before, after):
    """A changed literal that still formats the same arguments the same way
    (an upper-cased "%d" would raise ValueError instead: not text only)."""
    return _PLACEHOLDER.findall(before) == _PLACEHOLDER.findall(after)


def _differences(a, b, chain):
    """Yield ``(chain, a, b)`` for each place where trees ``a`` and ``b`` differ:
    the nodes of ``a`` from the top down to the difference, and the two values."""
    if type(a) is not type(b):
        yield chain + ([a] if isinstance(a, ast.AST) else []), a, b
    elif isinstance(a, ast.AST):
        here = chain + [a]
        for field in a._fields:
            yield from _differences(getattr(a, field), getattr(b, field), here)
    elif isinstance(a, list):
        if len(a) != len(b):
            yield chain, a, b
        else:
            for x, y in zip(a, b):
                yield from _differences(x, y, chain)
    elif a != b:
        yield chain, a, b


def _error_name(call):
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _message_argument(chain):
    """The message argument of a raised or returned PortsError/StoreError that
    ``chain`` runs through, or None."""
    for index in range(len(chain) - 2):
        statement, call, argument = chain[index:index + 3]
        if not isinstance(statement, (ast.Raise, ast.Return)) or not isinstance(call, ast.Call):
            continue
        if (statement.exc if isinstance(statement, ast.Raise) else statement.value) is not call:
            continue
        if _error_name(call) not in ERROR_TYPES:
            continue
        if isinstance(argument, ast.keyword):
            argument = chain[index + 3] if len(chain) > index + 3 else None
        if argument is not None and _is_message(argument):
            return argument
    return None


def _text_only(chain, before, after):
    argument = _message_argument(chain)
    if argument is None:
        return False
    if isinstance(before, str) and isinstance(after, str) and isinstance(chain[-1], ast.Constant):
        if not any(chain[-1] is literal for literal in _message_literals(argument)):
            return False  # a string among the operands or the choice's condition: not text
        return _same_placeholders(before, after)  # a literal of the message reworded
    if chain[-1] is argument and isinstance(argument, ast.Constant):
        return after is None  # a literal message replaced by None
    if before is argument and isinstance(after, ast.Constant):
        return after.value is None or isinstance(after.value, str)  # the message replaced whole
    return False


def _every_difference_is(rule, original, mutant):
    """Whether the two functions differ, and ``rule(chain, before, after)`` holds
    for each of their differences (a changed number of statements never does)."""
    if len(original.body) != len(mutant.body):
        return False
    diffs = list(_differences(original.args, mutant.args, [original]))
    for a, b in zip(original.body, mutant.body):
        diffs.extend(_differences(a, b, [original]))
    return bool(diffs) and all(rule(*diff) for diff in diffs)


def message_only(original, mutant):
    """The rule: every difference between the two functions is message text."""
    return _every_difference_is(_text_only, original, mutant)


# ------------------------------------------------------------ equivalents
SQL_CALLS = {"execute", "executemany", "executescript"}
_SQL_PARAMETER = re.compile(r"[:@$][A-Za-z_]")


def _sql_case_only(chain, before, after):
    """A string literal handed to execute() that only changed letter case, and
    whose case cannot matter: no quoted literal, no named parameter in it."""
    if not (isinstance(before, str) and isinstance(after, str) and before != after):
        return False
    if before.lower() != after.lower() or any(q in before for q in "'\"") or _SQL_PARAMETER.search(before):
        return False
    if len(chain) < 2 or not isinstance(chain[-1], ast.Constant):
        return False
    sql, call = chain[-1], chain[-2]
    if isinstance(call, ast.BinOp) and isinstance(call.op, ast.Mod) and call.left is sql and len(chain) >= 3:
        # "PRAGMA user_version = %d" % VERSION: the same placeholders, the same SQL
        if not _same_placeholders(before, after):
            return False
        sql, call = call, chain[-3]
    return (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr in SQL_CALLS
            and bool(call.args) and call.args[0] is sql)


def sql_case_only(original, mutant):
    """The SQL-case rule: every difference is SQL text changed only in letter case."""
    return _every_difference_is(_sql_case_only, original, mutant)


SQL_CASE_REASON = "SQL text changed only in letter case: SQLite reads keywords and identifiers in any case"


class Equivalent(NamedTuple):
    """One entry of equivalent.txt: a surviving mutant, by its change, and why
    no caller can tell it from the original."""
    section: str
    function: str
    change: List[str]
    why: str
    line: int


def _normal(diff_line):
    """A diff line as compared: its marker and its code without indentation."""
    return diff_line[:1] + " " + diff_line[1:].strip()


def read_equivalents(path):
    """The entries of equivalent.txt (blocks separated by blank lines:
    ``<section> <function>``, the change's ``-``/``+`` lines, ``why: ...``)."""
    if not os.path.exists(path):
        return []
    entries = []
    block = []  # type: List[tuple]

    def close():
        if not block:
            return
        number, head = block[0]
        parts = head.split()
        change = [_normal(text) for _number, text in block[1:] if text[:1] in "+-"]
        why = " ".join(text.split(":", 1)[1].strip() for _number, text in block[1:] if text.startswith("why:"))
        if len(parts) != 2 or not change or not why:
            raise SystemExit("%s:%d: an entry is '<section> <function>', its -/+ lines, then 'why: ...'" % (path, number))
        entries.append(Equivalent(parts[0], parts[1], change, why, number))
        del block[:]

    with open(path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, 1):
            text = raw.rstrip("\n")
            if text.startswith("#"):
                continue
            if not text.strip():
                close()
                continue
            block.append((number, text.strip() if not block else text.lstrip()))
    close()
    return entries


def qualified(func):
    """mutmut's mangled function name as Python spells it: ``xǁTransactionǁapply__mutmut_3``
    is ``Transaction.apply``, ``x_check_path__mutmut_9`` is ``check_path``."""
    name = re.sub(r"__mutmut_(\d+|orig)$", "", func)
    if name.startswith("x\u01c1"):
        return ".".join(name[2:].split("\u01c1"))
    return name[2:] if name.startswith("x_") else name


# ---------------------------------------------------------------- results
def functions(path):
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    found = {}
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and "__mutmut_" in node.name:
            found[node.name] = node
    return text.splitlines(), found


def short_diff(lines, original, mutant):
    # (ast.get_source_segment splits the whole file per call: far too slow here)
    before = lines[original.lineno - 1:original.end_lineno]
    after = [line.replace(mutant.name, original.name, 1) for line in lines[mutant.lineno - 1:mutant.end_lineno]]
    return [line for line in difflib.unified_diff(before, after, lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def collect(targets, equivalents):
    used_entries.clear()
    results = OrderedDict()
    for name in targets:
        rel = "%s/%s" % (PREFIX, source_of(name))
        meta_path = os.path.join(WORK, "mutants", rel + ".meta")
        if not os.path.exists(meta_path):
            results[name] = None
            continue
        with open(meta_path, encoding="utf-8") as handle:
            codes = json.load(handle)["exit_code_by_key"]
        text, funcs = functions(os.path.join(WORK, "mutants", rel))
        rows = []
        for key, code in codes.items():
            func = key.rsplit(".", 1)[1]
            mutant, original = funcs[func], funcs[re.sub(r"__mutmut_\d+$", "__mutmut_orig", func)]
            row = {
                "name": key,
                "short": func,
                "function": qualified(func),
                "status": status_of(code),
                "message_only": message_only(original, mutant),
                "diff": short_diff(text, original, mutant),
                "equivalent": None,
            }
            if not row["message_only"] and row["status"] not in KILLED:
                row["equivalent"] = equivalence(name, row, original, mutant, equivalents)
            rows.append(row)
        results[name] = rows
    return results


def equivalence(section, row, original, mutant, equivalents):
    """Why a survivor is equivalent (marking its entry used), or None."""
    change = [_normal(line) for line in row["diff"]]
    for entry in equivalents:
        if entry.section == section and entry.function == row["function"] and entry.change == change:
            used_entries.add(entry.line)
            return entry.why
    if sql_case_only(original, mutant):
        return SQL_CASE_REASON
    return None


used_entries = set()  # lines of equivalent.txt that matched a survivor


def summarise(results):
    table = OrderedDict()
    for name, rows in results.items():
        if rows is None:
            table[name] = None
            continue
        counted = [r for r in rows if not r["message_only"] and not r["equivalent"]]
        killed = sum(1 for r in counted if r["status"] in KILLED)
        statuses = Counter(r["status"] for r in counted)
        table[name] = {
            "mutants": len(rows),
            "excluded": sum(1 for r in rows if r["message_only"]),
            "equivalent": sum(1 for r in rows if r["equivalent"]),
            "counted": len(counted),
            "killed": killed,
            "survived": len(counted) - killed,
            "statuses": dict(statuses),
            "score": 100.0 * killed / len(counted) if counted else 100.0,
        }
    return table


COLUMNS = ("mutants", "excluded", "equivalent", "counted", "killed", "survived")


def report(results, table, skipped, legs, min_score, equivalents):
    out = []
    total = Counter()
    width = max([22] + [len(name) for name in table])
    out.append("%s %7s %12s %10s %7s %7s %8s %7s" % (
        "file".ljust(width), "mutants", "message-text", "equivalent", "counted", "killed", "survived", "score"))
    for name, row in table.items():
        if row is None:
            out.append("%s no results (see mutmut.log)" % name.ljust(width))
            continue
        for key in COLUMNS:
            total[key] += row[key]
        out.append("%s %7d %12d %10d %7d %7d %8d %6.1f%%" % ((name.ljust(width),) + tuple(row[k] for k in COLUMNS) + (row["score"],)))
    score = 100.0 * total["killed"] / total["counted"] if total["counted"] else 0.0
    out.append("%s %7d %12d %10d %7d %7d %8d %6.1f%%" % (("overall".ljust(width),) + tuple(total[k] for k in COLUMNS) + (score,)))
    below = [name for name, row in table.items() if row is None or row["score"] < min_score]
    out.append("target %.0f%% for every file: %s" % (min_score, "met" if not below else "NOT met (%s)" % ", ".join(below)))
    for leg in legs:
        out.append("leg: %s at %s%s, %s, %dm%02ds, mutmut %s" % (
            leg["mode"], leg["commit"], " (+ uncommitted changes)" if leg["dirty"] else "", leg["date"],
            leg["seconds"] // 60, leg["seconds"] % 60, leg["mutmut"]))
    for path in skipped:
        out.append("not mutated (not tracked by git yet): %s" % path)

    out.append("")
    out.append("Excluded by the message-text rule (only an error message's text or formatting changes):")
    for name, rows in results.items():
        for row in rows or ():
            if row["message_only"]:
                plus = next((line for line in row["diff"] if line.startswith("+")), "")
                out.append("  %s %-45s %-8s %s" % (name.ljust(width), row["short"], row["status"], plus[1:].strip()[:100]))

    out.append("")
    out.append("Equivalent (survivors no caller can tell from the original; tests/mutation/equivalent.txt or the SQL-case rule):")
    for name, rows in results.items():
        for row in rows or ():
            if row["equivalent"]:
                out.append("  %s  %s" % (row["name"], row["equivalent"]))
                out.extend("      " + line for line in row["diff"])
    stale = [entry for entry in equivalents if entry.line not in used_entries and entry.section in results]
    for entry in stale:
        out.append("  STALE entry (matches no survivor): equivalent.txt line %d, %s %s" % (entry.line, entry.section, entry.function))

    out.append("")
    out.append("Surviving mutants (show one with: cd .build/mutation/work && mutmut show NAME):")
    survivors = 0
    for name, rows in results.items():
        for row in rows or ():
            if not row["message_only"] and not row["equivalent"] and row["status"] not in KILLED:
                survivors += 1
                out.append("  %s  [%s]" % (row["name"], row["status"]))
                out.extend("      " + line for line in row["diff"])
    if not survivors:
        out.append("  none")
    return "\n".join(out), score, below


def markdown(table, legs):
    """The result as CONTRIBUTING.md's table."""
    date = legs[-1]["date"] if legs else time.strftime("%Y-%m-%d")
    version = legs[-1]["mutmut"] if legs else mutmut_version()
    lines = ["| file | mutants | killed | equivalent | message-text | survived | score | date | mutmut |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for name, row in table.items():
        if row is not None:
            lines.append("| %s | %d | %d | %d | %d | %d | %.1f %% | %s | %s |" % (
                name, row["mutants"], row["killed"], row["equivalent"], row["excluded"], row["survived"],
                row["score"], date, version))
    return "\n".join(lines)


def select(targets, wanted):
    """The sections that ``wanted`` names, each by its section or by its file name alone
    when one section only has it; and the names that match no section, or several."""
    chosen, unknown = set(), []
    for name in wanted:
        matches = [section for section in targets if name in (section, os.path.basename(section))]
        if name in targets:
            matches = [name]
        if len(matches) == 1:
            chosen.add(matches[0])
        else:
            unknown.append(name)
    return chosen, unknown


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("MUTATION_JOBS", os.cpu_count() or 2)))
    parser.add_argument("--config", default=os.path.join(HERE, "mutation.cfg"))
    parser.add_argument("--report-only", action="store_true", help="summarise the last run again, run nothing")
    parser.add_argument("--resume", action="store_true",
                        help="continue the last run: keep its verdicts, test what is untested and every survivor again")
    parser.add_argument("--markdown", action="store_true", help="also print the result as CONTRIBUTING.md's table")
    parser.add_argument("files", nargs="*",
                        help="only these files of mutation.cfg (e.g. request.py, plugin_utils/fleet_ports.py or fleet_ports.py)")
    args = parser.parse_args()

    targets, skipped, min_score = read_config(args.config)
    chosen, unknown = select(targets, args.files)
    if unknown:
        log("not in %s (or not tracked by git, or ambiguous): %s" % (os.path.relpath(args.config, ROOT), ", ".join(unknown)))
        return 2
    if args.files:
        targets = OrderedDict((name, tests) for name, tests in targets.items() if name in chosen)
    start = time.time()
    log_path = os.path.join(ROOT, ".build", "mutation", "mutmut.log")
    legs = []
    if os.path.exists(HISTORY):
        with open(HISTORY, encoding="utf-8") as handle:
            legs = json.load(handle)
    equivalents = read_equivalents(EQUIVALENT)
    if not args.report_only:
        os.makedirs(WORK, exist_ok=True)
        equivalent = set()
        if args.resume and not os.path.isdir(os.path.join(WORK, "mutants")):
            log("nothing to resume: no earlier run in %s" % os.path.relpath(WORK, ROOT))
            return 2
        state = git_state()  # what is copied and mutated, whatever is committed meanwhile
        if args.resume:
            known = collect(targets, equivalents)
            equivalent = set(row["name"] for rows in known.values() for row in rows or () if row["equivalent"])
        tests = prepare(targets, args.resume)
        retried = retry_survivors(targets, equivalent) if args.resume else 0
        log("mutating %s with %d test files, %d workers%s (mutmut log: %s)" % (
            ", ".join(targets), len(tests), args.jobs,
            ", resuming: %d survivors tested again" % retried if args.resume else "", os.path.relpath(log_path, ROOT)))
        code = run_mutmut(args.jobs, log_path)
        if code != 0:
            record_leg(args.resume, int(time.time() - start), state, stopped=code)
            with open(log_path, encoding="utf-8", errors="replace") as handle:
                tail = handle.read()[-3000:]
            log(tail)
            log("mutmut run failed with exit code %d (resume it with --resume)" % code)
            return 2
        legs = record_leg(args.resume, int(time.time() - start), state)

    results = collect(targets, equivalents)
    table = summarise(results)
    text, score, below = report(results, table, skipped, legs, min_score, equivalents)
    log(text)
    if args.markdown:
        log("")
        log(markdown(table, legs))
    with open(os.path.join(ROOT, ".build", "mutation", "report.txt"), "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    with open(os.path.join(ROOT, ".build", "mutation", "summary.json"), "w", encoding="utf-8") as handle:
        json.dump({"files": table, "score": score, "legs": legs, "min_score": min_score}, handle, indent=2)
    return 0 if not below else 1


if __name__ == "__main__":
    sys.exit(main())
