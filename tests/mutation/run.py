# Copyright (c) berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mutation testing of the allocator core and the controller's choices with mutmut 3: ``make mutation``.

1. Copy the checkout to .build/mutation/work/ansible_collections/berth/ports
   (the import path the code and the tests use) and write mutmut's setup.cfg
   there from tests/mutation/mutation.cfg.
2. ``mutmut run`` in .build/mutation/work, from scratch (its mutants/ copy
   and results are deleted first, so the score is never a cached one).
3. Read mutmut's results and print, per file: mutants, message-text mutants
   excluded, killed, survived, score; then every excluded mutant and every
   survivor with its diff. The whole report is also written to
   .build/mutation/report.txt and .build/mutation/summary.json.

Message-text mutants are excluded by one rule, applied to each mutant's
change (its function, original against mutated, as Python syntax trees).
A mutant is excluded when every difference lies in the message argument of
a ``PortsError(...)`` or ``StoreError(...)`` call that a ``raise`` or
``return`` statement hands back (a string literal, an f-string, or a string
literal formatted with ``%``, ``+`` or ``.format()``), and is either

* a string literal of that message changed into another string with the
  same ``%``/``{}`` placeholders (``"owner %r..."`` -> ``"XXowner %r...XX"``),
* or the whole message replaced by None or another string.

Such a mutant only changes what an operator reads; the exception type,
when it is raised and what it leaves behind are unchanged. Anything else
counts: a raise removed, ``from exc`` dropped, the exception type changed,
a formatting operand changed (``% (text,)`` -> ``% None`` can raise
TypeError instead), a placeholder broken (``"%d"`` -> ``"%D"``).

Exit status: 0 when the overall score reaches min_score, 1 below it, 2 when
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

ERROR_TYPES = {"PortsError", "StoreError"}

# mutmut's exit codes per mutant (mutmut.stats.status_by_exit_code).
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          35: "suspicious", 36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout",
          37: "type check", -11: "segfault", -9: "segfault", None: "not checked"}
# Killed: a test failed, or the mutant hung or crashed the test process.
KILLED = {"killed", "timeout", "segfault", "type check"}


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


def prepare(targets):
    """The collection copy, mutmut's config and the pytest plugin, under WORK."""
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
def _is_message(node):
    """A string literal, an f-string, or a string literal being formatted."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        return _is_message(node.left)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return _is_message(node.func.value)
    return False


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
        return _same_placeholders(before, after)  # a literal of the message reworded
    if chain[-1] is argument and isinstance(argument, ast.Constant):
        return after is None  # a literal message replaced by None
    if before is argument and isinstance(after, ast.Constant):
        return after.value is None or isinstance(after.value, str)  # the message replaced whole
    return False


def message_only(original, mutant):
    """The rule: every difference between the two functions is message text."""
    if len(original.body) != len(mutant.body):
        return False
    diffs = list(_differences(original.args, mutant.args, [original]))
    for a, b in zip(original.body, mutant.body):
        diffs.extend(_differences(a, b, [original]))
    return bool(diffs) and all(_text_only(*diff) for diff in diffs)


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


def collect(targets):
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
            rows.append({
                "name": key,
                "short": func,
                "status": STATUS.get(code, "suspicious"),
                "message_only": message_only(original, mutant),
                "diff": short_diff(text, original, mutant),
            })
        results[name] = rows
    return results


def summarise(results):
    table = OrderedDict()
    for name, rows in results.items():
        if rows is None:
            table[name] = None
            continue
        counted = [r for r in rows if not r["message_only"]]
        killed = sum(1 for r in counted if r["status"] in KILLED)
        statuses = Counter(r["status"] for r in counted)
        table[name] = {
            "mutants": len(rows),
            "excluded": len(rows) - len(counted),
            "counted": len(counted),
            "killed": killed,
            "survived": len(counted) - killed,
            "statuses": dict(statuses),
            "score": 100.0 * killed / len(counted) if counted else 100.0,
        }
    return table


def report(results, table, skipped, elapsed, min_score):
    out = []
    total = Counter()
    width = max([22] + [len(name) for name in table])
    out.append("%s %7s %9s %7s %7s %8s %7s" % ("file".ljust(width), "mutants", "excluded", "counted", "killed", "survived", "score"))
    for name, row in table.items():
        if row is None:
            out.append("%s no results (see mutmut.log)" % name.ljust(width))
            continue
        for key in ("mutants", "excluded", "counted", "killed", "survived"):
            total[key] += row[key]
        out.append("%s %7d %9d %7d %7d %8d %6.1f%%" % (
            name.ljust(width), row["mutants"], row["excluded"], row["counted"], row["killed"], row["survived"], row["score"]))
    score = 100.0 * total["killed"] / total["counted"] if total["counted"] else 0.0
    out.append("%s %7d %9d %7d %7d %8d %6.1f%%" % (
        "overall".ljust(width), total["mutants"], total["excluded"], total["counted"], total["killed"], total["survived"], score))
    out.append("run time %dm%02ds; target %.0f%%: %s" % (
        elapsed // 60, elapsed % 60, min_score, "met" if score >= min_score else "NOT met"))
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
    out.append("Surviving mutants (show one with: cd .build/mutation/work && mutmut show NAME):")
    survivors = 0
    for name, rows in results.items():
        for row in rows or ():
            if not row["message_only"] and row["status"] not in KILLED:
                survivors += 1
                out.append("  %s  [%s]" % (row["name"], row["status"]))
                out.extend("      " + line for line in row["diff"])
    if not survivors:
        out.append("  none")
    return "\n".join(out), score


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
    if not args.report_only:
        os.makedirs(WORK, exist_ok=True)
        tests = prepare(targets)
        log("mutating %s with %d test files, %d workers (mutmut log: %s)" % (
            ", ".join(targets), len(tests), args.jobs, os.path.relpath(log_path, ROOT)))
        code = run_mutmut(args.jobs, log_path)
        if code != 0:
            with open(log_path, encoding="utf-8", errors="replace") as handle:
                tail = handle.read()[-3000:]
            log(tail)
            log("mutmut run failed with exit code %d" % code)
            return 2
    elapsed = int(time.time() - start)

    results = collect(targets)
    table = summarise(results)
    text, score = report(results, table, skipped, elapsed, min_score)
    log(text)
    with open(os.path.join(ROOT, ".build", "mutation", "report.txt"), "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    with open(os.path.join(ROOT, ".build", "mutation", "summary.json"), "w", encoding="utf-8") as handle:
        json.dump({"files": table, "score": score, "seconds": elapsed, "min_score": min_score}, handle, indent=2)
    return 0 if score >= min_score else 1


if __name__ == "__main__":
    sys.exit(main())
