# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rules by which `make mutation` leaves a mutant out of the score
(tests/mutation/run.py): message text, the SQL-case rule, the listed
equivalents, and the resumed run's retry of survivors. A rule that excluded
too much would make the score a lie, so each is tested on both sides."""

from __future__ import annotations

import ast
import configparser
import importlib.util
import json
import os
import re

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MUTATION = os.path.join(ROOT, "tests", "mutation")


def _load_run():
    spec = importlib.util.spec_from_file_location("berth_mutation_run", os.path.join(MUTATION, "run.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run = _load_run()


def _pair(original, mutated):
    return ast.parse(original).body[0], ast.parse(mutated).body[0]


# ------------------------------------------------------------ message text
@pytest.mark.parametrize("mutated, excluded", [
    ('def f(p):\n    raise StoreError("XXdb_path %s is lockedXX" % p)\n', True),
    ('def f(p):\n    raise StoreError(None)\n', True),
    ('def f(p):\n    raise StoreError("db_path %S is locked" % p)\n', False),   # a placeholder broken
    ('def f(p):\n    raise StoreError("db_path %s is locked" % None)\n', False),  # an operand changed
    ('def f(p):\n    raise PortsError("db_path %s is locked" % p)\n', False),   # another exception type
    ('def f(p):\n    return None\n', False),                                     # no raise at all
])
def test_message_text_rule(mutated, excluded):
    original, mutant = _pair('def f(p):\n    raise StoreError("db_path %s is locked" % p)\n', mutated)
    assert run.message_only(original, mutant) is excluded


CHOICE = 'def f(p, shared):\n    raise PortsError("%s: busy" % p if not shared else "%s: not ours" % p)\n'


@pytest.mark.parametrize("mutated, excluded", [
    ('def f(p, shared):\n    raise PortsError("XX%s: busyXX" % p if not shared else "%s: not ours" % p)\n', True),
    ('def f(p, shared):\n    raise PortsError("%s: busy" % p if not shared else "%S: NOT OURS" % p)\n', False),
    ('def f(p, shared):\n    raise PortsError("%s: busy" % p if shared else "%s: not ours" % p)\n', False),
])
def test_message_text_rule_reads_a_choice_between_two_messages(mutated, excluded):
    assert run.message_only(*_pair(CHOICE, mutated)) is excluded


def test_a_string_among_the_operands_is_not_message_text():
    # d["owner"] -> d["XXownerXX"] raises KeyError instead of the StoreError
    original, mutant = _pair('def f(d):\n    raise StoreError("held by %s" % d["owner"])\n',
                             'def f(d):\n    raise StoreError("held by %s" % d["XXownerXX"])\n')
    assert not run.message_only(original, mutant)


# ---------------------------------------------------------------- SQL case
SQL = 'def f(conn, proto):\n    conn.execute("DELETE FROM free_runs WHERE proto = ?", (proto,))\n'


@pytest.mark.parametrize("mutated, equivalent", [
    ('def f(conn, proto):\n    conn.execute("delete from free_runs where proto = ?", (proto,))\n', True),
    ('def f(conn, proto):\n    conn.execute("XXDELETE FROM free_runs WHERE proto = ?XX", (proto,))\n', False),
    ('def f(conn, proto):\n    conn.execute("DELETE FROM free_runs WHERE proto = ?", (None,))\n', False),
    ('def f(conn, proto):\n    conn.execute("DELETE FROM free_runs WHERE proto = ?")\n', False),
])
def test_sql_case_rule_takes_case_only_changes_of_the_sql_text(mutated, equivalent):
    assert run.sql_case_only(*_pair(SQL, mutated)) is equivalent


PRAGMA = 'def f(conn):\n    conn.execute("PRAGMA user_version = %d" % VERSION)\n'


@pytest.mark.parametrize("mutated, equivalent", [
    ('def f(conn):\n    conn.execute("pragma user_version = %d" % VERSION)\n', True),
    ('def f(conn):\n    conn.execute("PRAGMA USER_VERSION = %D" % VERSION)\n', False),  # %D raises ValueError
])
def test_sql_case_rule_reads_sql_formatted_with_percent(mutated, equivalent):
    assert run.sql_case_only(*_pair(PRAGMA, mutated)) is equivalent


@pytest.mark.parametrize("code, status", [
    (1, "killed"), (0, "survived"), (-11, "segfault"), (-14, "crashed"), (36, "timeout"), (7, "suspicious"), (None, "not checked"),
])
def test_a_test_process_ended_by_a_signal_saw_the_mutant(code, status):
    assert run.status_of(code) == status
    assert (status in run.KILLED) is (status in ("killed", "segfault", "crashed", "timeout"))


@pytest.mark.parametrize("original, mutated", [
    # a quoted literal: its case is data ('tcp' is not 'TCP')
    ("def f(conn):\n    conn.execute(\"SELECT 1 FROM t WHERE proto = 'tcp'\")\n",
     "def f(conn):\n    conn.execute(\"SELECT 1 FROM T WHERE PROTO = 'TCP'\")\n"),
    # a named parameter: sqlite3 looks its name up as written
    ('def f(conn):\n    conn.execute("SELECT 1 FROM t WHERE proto = :proto", {"proto": 1})\n',
     'def f(conn):\n    conn.execute("SELECT 1 FROM T WHERE PROTO = :PROTO", {"proto": 1})\n'),
    # not SQL handed to execute(): a plain string's case is data
    ('def f():\n    return "RW"\n', 'def f():\n    return "rw"\n'),
])
def test_sql_case_rule_leaves_case_that_matters_counted(original, mutated):
    assert not run.sql_case_only(*_pair(original, mutated))


# ------------------------------------------------------- equivalent.txt
def test_mangled_names_read_as_python_spells_them():
    assert run.qualified("x\u01c1Transaction\u01c1apply__mutmut_3") == "Transaction.apply"
    assert run.qualified("x__flock__mutmut_12") == "_flock"
    assert run.qualified("x_check_path__mutmut_orig") == "check_path"


def _write(tmp_path, text):
    path = tmp_path / "equivalent.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_an_entry_matches_its_survivor_only(tmp_path):
    path = _write(tmp_path, "# comment\n\nstore_files.py check_path\n-    if len(path) > LIMIT:\n"
                            "+    if len(path) >= LIMIT:\nwhy: no path has exactly LIMIT bytes here\n")
    entries = run.read_equivalents(path)
    assert [(e.section, e.function, e.change) for e in entries] == [
        ("store_files.py", "check_path", ["- if len(path) > LIMIT:", "+ if len(path) >= LIMIT:"])]
    original, mutant = _pair("def x_check_path(path):\n    pass\n", "def x_check_path(path):\n    pass\n")
    row = {"function": "check_path", "diff": ["-        if len(path) > LIMIT:", "+        if len(path) >= LIMIT:"]}
    assert run.equivalence("store_files.py", row, original, mutant, entries) == "no path has exactly LIMIT bytes here"
    other = dict(row, diff=["-        if len(path) > LIMIT:", "+        if len(path) > LIMIT + 1:"])
    assert run.equivalence("store_files.py", other, original, mutant, entries) is None
    assert run.equivalence("store_schema.py", row, original, mutant, entries) is None


@pytest.mark.parametrize("text", [
    "store_files.py check_path\n- a\n+ b\n",                 # no reason given
    "store_files.py\n- a\n+ b\nwhy: x\n",                    # no function
    "store_files.py check_path\nwhy: nothing changed\n",     # no change
])
def test_an_entry_without_its_parts_is_refused(tmp_path, text):
    with pytest.raises(SystemExit, match="equivalent.txt:1:"):
        run.read_equivalents(_write(tmp_path, text))


def _sections():
    parser = configparser.ConfigParser()
    parser.read(os.path.join(MUTATION, "mutation.cfg"), encoding="utf-8")
    return [section for section in parser.sections() if section != "run"]


def test_the_committed_equivalents_name_mutated_files_and_give_reasons():
    entries = run.read_equivalents(run.EQUIVALENT)
    sections = _sections()
    assert [e.section for e in entries if e.section not in sections] == []
    assert all(len(e.why) > 20 for e in entries)


# ----------------------------------------------------------- resumed runs
def test_a_resumed_run_tests_every_survivor_again_and_keeps_the_rest(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "WORK", str(tmp_path))
    meta = tmp_path / "mutants" / run.PREFIX / "plugins" / "module_utils" / "request.py.meta"
    meta.parent.mkdir(parents=True)
    codes = {"m1": 1, "m2": 0, "m3": None, "m4": 33, "m5": -11, "m6": 36}
    codes["m7"] = 0  # a survivor shown equivalent: no test can kill it, not tried again
    meta.write_text(json.dumps({"exit_code_by_key": codes, "other": "kept"}), encoding="utf-8")
    assert run.retry_survivors(["request.py"], {"m7"}) == 2
    written = json.loads(meta.read_text(encoding="utf-8"))
    assert written["exit_code_by_key"] == {"m1": 1, "m2": None, "m3": None, "m4": None, "m5": -11, "m6": 36, "m7": 0}
    assert written["other"] == "kept"


# ------------------------------------------------------- CONTRIBUTING.md
def test_contributing_records_a_result_for_every_mutated_file():
    with open(os.path.join(ROOT, "CONTRIBUTING.md"), encoding="utf-8") as handle:
        text = handle.read()
    section = text.split("### Last run", 1)[1].split("\n## ", 1)[0]
    recorded = set(re.findall(r"^\| `?([\w/]+\.py)`? \|", section, flags=re.MULTILINE))
    assert sorted(set(_sections()) - recorded) == []
