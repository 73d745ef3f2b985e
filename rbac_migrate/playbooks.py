"""Playbooks: pre-approved procedures in YAML, run step by step, resumable from the audit log.

A playbook is a list of steps. A ``run`` step is an rbac-migrate command line; a ``gate`` step
waits for an operator's confirmation and/or a minimum time since the previous step, and closes if
a batch of this run was rolled back meanwhile. Every step's outcome is an audit record, so a run
can be resumed later, by another process or another machine sharing the store.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from .audit import AuditRecord, new_record
from .errors import RbacMigrateError

TOP_KEYS = {"name", "description", "vars", "steps"}
STEP_KEYS = {"id", "run", "gate", "explain", "repeat"}
GATE_KEYS = {"confirm", "wait", "no_rollback_since"}
VAR_KEYS = {"required", "default", "help"}
DURATION = re.compile(r"^(\d+)\s*([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class PlaybookError(RbacMigrateError):
    """A playbook file is invalid, or a run cannot go on."""


@dataclass(frozen=True)
class Gate:
    confirm: str | None = None
    wait: str | None = None  # a duration such as 12h or 7d, or a {variable} holding one
    no_rollback_since: str | None = None  # a step id; defaults to the run step before the gate


@dataclass(frozen=True)
class Step:
    id: str
    run: str | None = None
    gate: Gate | None = None
    explain: str = ""
    repeat: bool = False  # run again while each run creates a batch (e.g. "the rest", batch by batch)


@dataclass(frozen=True)
class Playbook:
    name: str
    description: str
    variables: dict[str, dict]
    steps: tuple[Step, ...]
    source: str
    digest: str


def _fail(path: str, node, message: str) -> PlaybookError:
    line = f" line {node.start_mark.line + 1}" if node is not None else ""
    return PlaybookError(f"playbook {path}{line}: {message}")


def _mapping(path: str, node, allowed: set[str], what: str) -> dict[str, Any]:
    if not isinstance(node, yaml.MappingNode):
        raise _fail(path, node, f"{what} must be a mapping of 'key: value'")
    found = {}
    for key_node, value_node in node.value:
        key = key_node.value
        if key not in allowed:
            raise _fail(path, key_node, f"unknown key '{key}' in {what} (allowed: {', '.join(sorted(allowed))})")
        found[key] = value_node
    return found


def _scalar(path: str, node, what: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
        raise _fail(path, node, f"{what} must be a non-empty text")
    return str(node.value)


def parse_duration(text: str) -> timedelta:
    match = DURATION.match(text.strip())
    if not match:
        raise ValueError(f"'{text}' is not a duration like 30m, 12h or 7d")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


def load(path: str | Path) -> Playbook:
    """Read and validate a playbook; every problem names its line."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
        root = yaml.compose(text)
    except OSError as exc:
        raise PlaybookError(f"cannot read playbook {source}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PlaybookError(
            f"playbook {source}{f' line {mark.line + 1}' if mark else ''}: {getattr(exc, 'problem', None) or exc}"
        ) from None
    if root is None:
        raise PlaybookError(f"playbook {source} is empty")
    top = _mapping(source, root, TOP_KEYS, "the playbook")
    if "steps" not in top or not isinstance(top["steps"], yaml.SequenceNode) or not top["steps"].value:
        raise _fail(source, top.get("steps", root), "a playbook needs a non-empty list of steps")
    variables = _variables(source, top.get("vars"))
    steps = tuple(_step(source, node, index) for index, node in enumerate(top["steps"].value))
    _check_ids(source, top["steps"].value, steps)
    _check_placeholders(source, top["steps"].value, steps, variables)
    return Playbook(
        name=_scalar(source, top["name"], "name") if "name" in top else Path(path).stem,
        description=str(top["description"].value) if "description" in top else "",
        variables=variables,
        steps=steps,
        source=source,
        digest=hashlib.sha256(text.encode("utf-8")).hexdigest()[:16],
    )


def _variables(source: str, node) -> dict[str, dict]:
    if node is None:
        return {}
    result = {}
    for name, spec in _mapping(source, node, _AnyKey(), "vars").items():
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise _fail(source, spec, f"variable name '{name}' must be lower case letters, digits and _")
        fields = {k: v.value for k, v in _mapping(source, spec, VAR_KEYS, f"variable '{name}'").items()}
        fields["required"] = str(fields.get("required", "false")).lower() == "true"
        result[name] = fields
    return result


class _AnyKey(set):
    def __contains__(self, _item) -> bool:
        return True


def _step(source: str, node, index: int) -> Step:
    fields = _mapping(source, node, STEP_KEYS, f"step {index + 1}")
    if ("run" in fields) == ("gate" in fields):
        raise _fail(source, node, f"step {index + 1} needs exactly one of 'run' or 'gate'")
    step_id = _scalar(source, fields["id"], "id") if "id" in fields else f"step{index + 1}"
    explain = str(fields["explain"].value) if "explain" in fields else ""
    if "run" in fields:
        command = _scalar(source, fields["run"], "run")
        try:
            shlex.split(command)
        except ValueError as exc:
            raise _fail(source, fields["run"], f"run: {exc}") from None
        repeat = "repeat" in fields and str(fields["repeat"].value).lower() == "true"
        return Step(step_id, run=command, explain=explain, repeat=repeat)
    return Step(step_id, gate=_gate(source, fields["gate"]), explain=explain)


def _gate(source: str, node) -> Gate:
    fields = _mapping(source, node, GATE_KEYS, "gate")
    wait = str(fields["wait"].value) if "wait" in fields else None
    if wait is not None and "{" not in wait:
        try:
            parse_duration(wait)
        except ValueError as exc:
            raise _fail(source, fields["wait"], str(exc)) from None
    if not fields.get("confirm") and wait is None:
        raise _fail(source, node, "a gate needs 'confirm' and/or 'wait'")
    return Gate(
        confirm=str(fields["confirm"].value) if "confirm" in fields else None,
        wait=wait,
        no_rollback_since=str(fields["no_rollback_since"].value) if "no_rollback_since" in fields else None,
    )


def _check_ids(source: str, nodes, steps: tuple[Step, ...]) -> None:
    seen: set[str] = set()
    for node, step in zip(nodes, steps, strict=True):
        if step.id in seen:
            raise _fail(source, node, f"step id '{step.id}' is used twice")
        seen.add(step.id)


def _check_placeholders(source: str, nodes, steps: tuple[Step, ...], variables: dict) -> None:
    for node, step in zip(nodes, steps, strict=True):
        gate_texts = [step.gate.confirm, step.gate.wait] if step.gate else []
        for text in filter(None, [step.run, step.explain, *gate_texts]):
            for _literal, name, _spec, _conv in string.Formatter().parse(text):
                if name is not None and name not in variables:
                    raise _fail(source, node, f"'{{{name}}}' is not a declared variable")


def resolve_vars(book: Playbook, given: dict[str, str]) -> dict[str, str]:
    """Declared variables with defaults applied; unknown or missing ones are errors."""
    for name in given:
        if name not in book.variables:
            raise PlaybookError(f"playbook {book.name} has no variable '{name}' (it has: {', '.join(book.variables)})")
    values = {}
    for name, spec in book.variables.items():
        if name in given:
            values[name] = given[name]
        elif spec.get("default") is not None:
            values[name] = str(spec["default"])
        elif spec.get("required"):
            raise PlaybookError(f"playbook {book.name} needs --var {name}=… ({spec.get('help', 'required')})")
        else:
            values[name] = ""
    return values


def command_args(step: Step, values: dict[str, str]) -> list[str]:
    """The step's command line with variables filled in as whole arguments (never re-parsed)."""
    args = []
    for token in shlex.split(step.run or ""):
        args.append(token.format(**values))
    return args


# -- running ---------------------------------------------------------------------------------


@dataclass
class RunState:
    """What the audit log says about one run of a playbook."""

    run_id: str
    playbook: str = ""
    done: dict[str, datetime] = field(default_factory=dict)  # step id → when it finished
    batches: dict[str, list[int]] = field(default_factory=dict)  # step id → batches it created
    finished: bool = False
    cancelled: bool = False
    values: dict[str, str] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        return bool(self.playbook) and not (self.finished or self.cancelled)


def run_id_for(book: Playbook, values: dict[str, str], started: datetime | None = None) -> str:
    """A new run's id, from playbook, variables and start time: each run is its own."""
    key = repr((book.name, sorted(values.items()), started.isoformat() if started else "")).encode("utf-8")
    return hashlib.sha256(key).hexdigest()[:12]


def runs_from(records: list[AuditRecord]) -> dict[str, RunState]:
    """Every run the audit log knows, by id, in the order they started."""
    runs: dict[str, RunState] = {}
    for record in records:
        run_id = record.details.get("run")
        if not run_id or not record.action.startswith("playbook."):
            continue
        state = runs.setdefault(run_id, RunState(run_id))
        if record.action == "playbook.start":
            state.values = record.details.get("vars", {})
            state.playbook = record.target
        elif record.action in ("playbook.step", "playbook.gate"):
            state.done[record.details["step"]] = record.at
            state.batches[record.details["step"]] = record.details.get("batches", [])
        elif record.action == "playbook.finish":
            state.finished = True
        elif record.action == "playbook.cancel":
            state.cancelled = True
    return runs


def state_from(records: list[AuditRecord], run_id: str) -> RunState:
    return runs_from(records).get(run_id) or RunState(run_id)


def _same_scope(book: Playbook, values: dict[str, str], other: RunState) -> bool:
    """Runs of one playbook on the same role (or, without a role, any two runs of it) share their gates."""
    if other.playbook != book.name:
        return False
    return "role" not in values or _same_role(values, other)


def _same_role(values: dict[str, str], other: RunState) -> bool:
    """Both runs name one role: another playbook's open run there would skip that run's gates."""
    return "role" in values and str(other.values.get("role", "")).lower() == values["role"].lower()


def _find_run(book: Playbook, values: dict[str, str], store) -> RunState | None:
    """The run this call continues: the open run of this playbook and scope, else the last one with these values.

    An open run with other variables is never bypassed: changing a soak time or a ticket does not
    start a fresh run past its gates.
    """
    runs = list(runs_from(store.audit_records()).values())
    for other in runs:
        if other.open and other.playbook != book.name and _same_role(values, other):
            raise PlaybookError(
                f"run {other.run_id} of {other.playbook} is still open on role {values['role']}: one playbook "
                f"at a time works on a role, so finish that run, or end it with "
                f"'rbac-migrate playbook cancel {other.run_id}'"
            )
        if other.open and _same_scope(book, values, other):
            if other.values != values:
                given = " ".join(f"--var {k}={v}" for k, v in other.values.items())
                raise PlaybookError(
                    f"run {other.run_id} of {book.name} is still open with other variables ({given}): "
                    f"run it with those to resume it, or end it with 'rbac-migrate playbook cancel {other.run_id}'"
                )
            return other
    same = [r for r in runs if r.playbook == book.name and r.values == values and r.finished]
    return same[-1] if same else None


@dataclass
class Outcome:
    status: str  # finished | waiting | failed | stopped
    message: str
    run_id: str


Runner = Callable[[list[str]], int]
Ask = Callable[[str], bool]


def run(
    book: Playbook,
    values: dict[str, str],
    store,
    runner: Runner,
    ask: Ask,
    say: Callable[[str], None],
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ticket: str | None = None,
    override_gate: str | None = None,
) -> Outcome:
    """Run (or resume) the playbook until it finishes, fails, or waits at a gate.

    ``override_gate`` (a reason) opens the next gate's wait early, once, with an audit record.
    """
    if override_gate is not None and not override_gate.strip():
        raise PlaybookError("--override-gate needs a reason, kept in the audit log")
    found = _find_run(book, values, store)
    if found is not None and found.finished:
        return Outcome("finished", f"run {found.run_id} of {book.name} already finished", found.run_id)
    if found is None:
        run_id = run_id_for(book, values, now())
        store.audit(new_record("playbook.start", book.name, ticket, run=run_id, vars=values, digest=book.digest))
    else:
        run_id = found.run_id
    state = state_from(store.audit_records(), run_id)
    previous: Step | None = None
    for step in book.steps:
        if step.id in state.done:
            previous = step
            continue
        if step.explain:
            say(step.explain.format(**values))
        if step.gate is not None:
            gate = _Gate(step, book, state, store, previous, values, override_gate)
            blocked = gate.blocked(now(), ask)
            if blocked is not None:
                return Outcome(blocked[0], blocked[1], run_id)
            if gate.overridden:
                store.audit(
                    new_record("playbook.override", book.name, ticket, run=run_id, step=step.id, reason=override_gate)
                )
                override_gate = None
            store.audit(new_record("playbook.gate", book.name, ticket, run=run_id, step=step.id))
        else:
            outcome = _run_step(step, values, store, runner, say, run_id, book, ticket)
            if outcome is not None:
                return outcome
        state = state_from(store.audit_records(), run_id)
        previous = step
    store.audit(new_record("playbook.finish", book.name, ticket, run=run_id))
    return Outcome("finished", f"{book.name}: all {len(book.steps)} steps done", run_id)


def cancel(store, run_id: str, reason: str, ticket: str | None = None) -> RunState:
    """End an open run (audited); its gates close with it."""
    state = runs_from(store.audit_records()).get(run_id)
    if state is None or not state.playbook:
        raise PlaybookError(f"there is no playbook run '{run_id}': 'rbac-migrate playbook status' lists them")
    if not state.open:
        ended = "finished" if state.finished else "cancelled"
        raise PlaybookError(f"run {run_id} of {state.playbook} is already {ended}")
    store.audit(new_record("playbook.cancel", state.playbook, ticket, run=run_id, reason=reason))
    return state


def _run_step(step, values, store, runner, say, run_id, book, ticket) -> Outcome | None:
    args = command_args(step, values)
    created: list[int] = []
    while True:
        say(f"$ rbac-migrate {shlex.join(args)}")
        before = {b.id for b in store.batches()}
        code = runner(args)
        new = sorted(b.id for b in store.batches() if b.id not in before)
        created += new
        if code != 0:
            store.audit(new_record("playbook.failed", book.name, ticket, run=run_id, step=step.id, exit=code))
            message = f"step '{step.id}' failed (exit {code}); fix the cause and run the playbook again"
            return Outcome("failed", message, run_id)
        if not (step.repeat and new):
            break
    store.audit(new_record("playbook.step", book.name, ticket, run=run_id, step=step.id, command=args, batches=created))
    return None


@dataclass
class _Gate:
    step: Step
    book: Playbook
    state: RunState
    store: Any
    previous: Step | None
    values: dict[str, str]
    override: str | None
    overridden: bool = False

    def blocked(self, at: datetime, ask: Ask) -> tuple[str, str] | None:
        """(status, message) while the gate stays shut, else None."""
        step, gate = self.step, self.step.gate
        watched = gate.no_rollback_since or (self.previous.id if self.previous else None)
        rolled_back = [
            b
            for sid, ids in self.state.batches.items()
            if watched and _at_or_after(self.book, sid, watched)
            for b in ids
            if self.store.batch(b).status in ("rolled_back", "partially_rolled_back")
        ]
        if rolled_back:
            return "stopped", f"gate '{step.id}' is closed: batch {rolled_back[0]} was rolled back since '{watched}'"
        if gate.wait is not None and self.previous is not None:
            try:
                wait = parse_duration(gate.wait.format(**self.values))
            except ValueError as exc:
                raise PlaybookError(f"gate '{step.id}': {exc}") from None
            opens = self.state.done[self.previous.id] + wait
            if at < opens and self.override is None:
                return "waiting", f"gate '{step.id}' opens at {opens:%Y-%m-%d %H:%M %Z}; run the playbook again then"
            self.overridden = at < opens
        if gate.confirm and not ask(gate.confirm.format(**self.values)):
            return "waiting", f"gate '{step.id}' is waiting for confirmation; run the playbook again to continue"
        return None


def _at_or_after(book: Playbook, step_id: str, since: str) -> bool:
    order = [s.id for s in book.steps]
    return since in order and step_id in order and order.index(step_id) >= order.index(since)


def status(store) -> list[dict]:
    """Every playbook run in the store with its progress."""
    runs: dict[str, dict] = {}
    for record in store.audit_records():
        run_id = record.details.get("run")
        if not record.action.startswith("playbook.") or not run_id:
            continue
        entry = runs.setdefault(
            run_id,
            {
                "run": run_id,
                "playbook": record.target,
                "started": record.at,
                "steps_done": 0,
                "last_step": "",
                "state": "running",
                "updated": record.at,
            },
        )
        entry["updated"] = record.at
        if record.action in ("playbook.step", "playbook.gate"):
            entry["steps_done"] += 1
            entry["last_step"] = record.details["step"]
            entry["state"] = "running"
        elif record.action == "playbook.failed":
            entry["state"] = f"failed at {record.details['step']}"
        elif record.action == "playbook.finish":
            entry["state"] = "finished"
        elif record.action == "playbook.cancel":
            entry["state"] = "cancelled"
    return list(runs.values())
