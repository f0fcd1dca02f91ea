// Setup: reading the probe, the decision table, the install steps, and one-line failures.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";

import { compareVersions, decide, failureLine, installSteps, parseProbe, pickWheel, PROBE_SCRIPT, runInstall, type Probe, type RunResult, type SetupState, type ShippedWheel } from "../src/setup";

const WHEEL: ShippedWheel = { file: "/ext/python/perfhint-0.2.0-py3-none-any.whl", name: "perfhint-0.2.0-py3-none-any.whl", version: "0.2.0", marker: "perfhint-0.2.0-py3-none-any.whl 1234" };
const READY: Probe = { ran: true, version: [3, 11, 7], perfhint: "0.2.0" };
const MISSING: Probe = { ran: true, version: [3, 11, 7], error: "ModuleNotFoundError: No module named 'perfhint'" };

function state(overrides: Partial<SetupState>): SetupState {
  return {
    candidate: { command: "python3", source: "path" },
    candidateProbe: MISSING,
    venvPython: "/store/venv/bin/python",
    venvProbe: undefined,
    venvMarker: undefined,
    wheel: WHEEL,
    ...overrides,
  };
}

function check(overrides: Partial<SetupState>, expected: string): void {
  const decision = decide(state(overrides));
  const text =
    decision.kind === "use" ? `use ${decision.interpreter.command} (${decision.interpreter.source})`
    : decision.kind === "install" ? `${decision.update ? "update" : "offer install"} from ${decision.basePython}: ${decision.reason}`
    : `fail: ${decision.message}`;
  assert.equal(text, expected);
}

test("decide: an interpreter that runs perfhint is used as it is", () => {
  check({ candidateProbe: READY }, "use python3 (path)");
  check({ candidateProbe: READY, venvProbe: READY }, "use python3 (path)");
});

test("decide: else the private environment built from the shipped wheel", () => {
  check({ venvProbe: READY, venvMarker: `${WHEEL.marker}\n` }, "use /store/venv/bin/python (private-environment)");
});

test("decide: a private environment from an older wheel is updated without asking", () => {
  check({ venvProbe: READY, venvMarker: "perfhint-0.1.0-py3-none-any.whl 99" }, "update from /store/venv/bin/python: updating the server to perfhint-0.2.0-py3-none-any.whl");
});

test("decide: otherwise offer to install, naming why", () => {
  check({}, "offer install from python3: perfhint is not installed for python3");
  check({ candidateProbe: { ran: true, version: [3, 12, 1], perfhint: "0.1.0", error: "ImportError: libonnxruntime.so" } },
    "offer install from python3: perfhint cannot start (ImportError: libonnxruntime.so) for python3");
  check({ venvProbe: { ran: false, error: "exit status 1" } }, "offer install from python3: perfhint is not installed for python3");
});

test("decide: failures name the fix", () => {
  check({ candidateProbe: { ran: false, notFound: true, error: "ENOENT" } },
    "fail: perfhint: no Python found (`python3` cannot be started). Install Python 3.10+ or set perfhint.interpreter to one.");
  check({ candidateProbe: { ran: true, version: [3, 8, 10], error: "x" } },
    "fail: perfhint: python3 is Python 3.8.10; the server needs 3.10 or newer. Set perfhint.interpreter to a newer Python.");
  check({ wheel: undefined },
    "fail: perfhint: the server is not installed for python3 and this build of the extension ships no server wheel. Run `python3 -m pip install perfhint` or set perfhint.interpreter.");
});

test("parseProbe reads the last JSON line and tolerates noise", () => {
  assert.deepEqual(parseProbe('warning: x\n{"version": [3, 11, 7], "executable": "/p", "perfhint": "0.1.0"}\n', "", 0),
    { ran: true, version: [3, 11, 7], executable: "/p", perfhint: "0.1.0" });
  assert.deepEqual(parseProbe("", "SyntaxError: invalid syntax\n", 1), { ran: false, error: "SyntaxError: invalid syntax" });
  assert.deepEqual(parseProbe("", "", null, "ENOENT"), { ran: false, notFound: true, error: "ENOENT" });
});

test("the probe script runs on this machine's python3 and answers JSON", () => {
  const stdout = execFileSync("python3", ["-c", PROBE_SCRIPT], { encoding: "utf8" });
  const probe = parseProbe(stdout, "", 0);
  assert.equal(probe.ran, true);
  assert.ok(probe.version !== undefined && probe.version[0] === 3);
  assert.ok(probe.perfhint !== undefined || probe.error !== undefined);
});

test("pickWheel takes the newest perfhint wheel and ignores other files", () => {
  const wheel = pickWheel("/ext/python", ["README", "perfhint-0.9.0-py3-none-any.whl", "perfhint-0.10.0-py3-none-any.whl", "other-1.0-py3-none-any.whl"], () => 7);
  assert.deepEqual(wheel, { file: "/ext/python/perfhint-0.10.0-py3-none-any.whl", name: "perfhint-0.10.0-py3-none-any.whl", version: "0.10.0", marker: "perfhint-0.10.0-py3-none-any.whl 7" });
  assert.equal(pickWheel("/ext/python", [], () => 0), undefined);
  assert.ok(compareVersions("0.10.0", "0.9.0") > 0);
});

test("install steps: a fresh venv, then pip installs the wheel with its dependencies", () => {
  const steps = installSteps({ basePython: "python3", update: false }, "/store/venv", "/store/venv/bin/python", WHEEL);
  assert.deepEqual(steps.map((step) => [step.command, ...step.args].join(" ")), [
    "python3 -m venv --clear /store/venv",
    `/store/venv/bin/python -m pip install --disable-pip-version-check --no-input ${WHEEL.file}`,
  ]);
  const update = installSteps({ basePython: "/store/venv/bin/python", update: true }, "/store/venv", "/store/venv/bin/python", WHEEL);
  assert.deepEqual(update.map((step) => step.args.slice(2).join(" ")), [
    `install --disable-pip-version-check --no-input --force-reinstall --no-deps ${WHEEL.file}`,
    `install --disable-pip-version-check --no-input ${WHEEL.file}`,
  ]);
});

function failure(kind: "venv" | "pip", result: RunResult): string {
  return failureLine({ title: "t", command: "python3", args: [], kind }, result);
}

test("failure lines name the fix and point at the log", () => {
  assert.match(failure("venv", { code: 1, output: "The virtual environment was not created successfully because ensurepip is not available." }), /Install python3-venv .*See Output > perfhint/);
  assert.match(failure("pip", { code: 1, output: "ERROR: Could not find a version that satisfies the requirement onnxruntime>=1.20" }), /could not download .* from PyPI\. Check the network/);
  assert.match(failure("pip", { code: 1, output: "WARNING: Retrying (Retry(total=4)) after connection broken by 'NewConnectionError(... Failed to establish a new connection'" }), /PyPI/);
  assert.match(failure("pip", { code: 2, output: "ERROR: something odd\n" }), /installing the server failed \(ERROR: something odd\)/);
  assert.match(failure("venv", { code: null, output: "", spawnError: "ENOENT" }), /could not start python3 \(ENOENT\)/);
  for (const line of [failure("pip", { code: 1, output: "a\nb\nc" })]) assert.equal(line.includes("\n"), false);
});

test("runInstall stops at the first failing step and logs the command", async () => {
  const ran: string[] = [];
  const log: string[] = [];
  const steps = installSteps({ basePython: "python3", update: false }, "/store/venv", "/store/venv/bin/python", WHEEL);
  const outcome = await runInstall(steps, {
    run: async (command, _args, onOutput) => {
      ran.push(command);
      onOutput("Collecting onnxruntime\n");
      return command === "python3" ? { code: 0, output: "" } : { code: 1, output: "ERROR: No matching distribution found for onnxruntime" };
    },
  }, (line) => log.push(line), () => undefined);
  assert.deepEqual(ran, ["python3", "/store/venv/bin/python"]);
  assert.equal(outcome.ok, false);
  assert.ok(log[0].startsWith("> python3 -m venv --clear /store/venv"));
  assert.ok(log.includes("Collecting onnxruntime"));
});
