/**
 * Getting a Python that can run `python -m perfhint serve`, with one click at most.
 *
 * What is hard: the server needs onnxruntime, a per-platform binary wheel, so the .vsix cannot carry
 * a ready environment; it carries the perfhint wheel (python/perfhint-*.whl) and pip fetches the
 * dependencies from PyPI. Each way this fails (no Python, a Python too old, a Python without venv,
 * no network for pip) must end as one line that names the fix, with pip's full output in
 * Output > perfhint. The decision is a pure function of what the probes found, so it is tested
 * without spawning anything; spawning is behind `Runner`.
 *
 * Order: the resolved interpreter if perfhint imports there (a developer's own install wins); else
 * the private environment if it was built from the wheel this extension ships; else offer to build
 * it from the resolved interpreter (or rebuild it, silently, when only the shipped wheel changed).
 */

import * as path from "node:path";

import type { Interpreter } from "./interpreter";

export const MIN_PYTHON: readonly [number, number] = [3, 10];

/** Prints one JSON line; never raises, so a broken environment is a result, not a crash. */
export const PROBE_SCRIPT = [
  "import json, sys",
  "sys.path[:] = [p for p in sys.path if p not in ('', '.')]",
  "r = {'version': list(sys.version_info[:3]), 'executable': sys.executable}",
  "try:",
  "    import perfhint",
  "    r['perfhint'] = perfhint.__version__",
  "    import onnxruntime, pygls, perfhint.lsp.server",
  "except BaseException as e:",
  "    r['error'] = type(e).__name__ + ': ' + str(e)",
  "print(json.dumps(r))",
].join("\n");

export interface Probe {
  /** The interpreter ran and printed its answer. */
  ran: boolean;
  version?: [number, number, number];
  executable?: string;
  perfhint?: string;
  /** Why perfhint cannot run there (an import error), or why the interpreter did not run. */
  error?: string;
  /** The interpreter could not be started at all (ENOENT, EACCES). */
  notFound?: boolean;
}

export function parseProbe(stdout: string, stderr: string, exitCode: number | null, spawnError?: string): Probe {
  if (spawnError !== undefined) {
    return { ran: false, notFound: true, error: spawnError };
  }
  const line = stdout.trim().split(/\r?\n/).filter((text) => text.startsWith("{")).pop();
  if (line === undefined) {
    const detail = lastLine(stderr) || `exit status ${exitCode}`;
    return { ran: false, error: detail };
  }
  try {
    const data = JSON.parse(line) as { version?: number[]; executable?: string; perfhint?: string; error?: string };
    const probe: Probe = { ran: true };
    if (Array.isArray(data.version) && data.version.length >= 3) {
      probe.version = [data.version[0], data.version[1], data.version[2]];
    }
    if (typeof data.executable === "string") probe.executable = data.executable;
    if (typeof data.perfhint === "string") probe.perfhint = data.perfhint;
    if (typeof data.error === "string") probe.error = data.error;
    return probe;
  } catch {
    return { ran: false, error: `unreadable answer: ${line.slice(0, 200)}` };
  }
}

export function usable(probe: Probe | undefined): boolean {
  return probe !== undefined && probe.ran && probe.perfhint !== undefined && probe.error === undefined;
}

export function versionText(version: readonly number[]): string {
  return version.join(".");
}

export function tooOld(probe: Probe): boolean {
  if (probe.version === undefined) return false;
  const [major, minor] = probe.version;
  return major < MIN_PYTHON[0] || (major === MIN_PYTHON[0] && minor < MIN_PYTHON[1]);
}

export interface ShippedWheel {
  file: string; // absolute path inside the installed extension
  name: string; // perfhint-0.1.0-py3-none-any.whl
  version: string;
  /** What the environment's marker file must say for the environment to count as built from it. */
  marker: string;
}

/** The newest `perfhint-*.whl` in a directory listing. */
export function pickWheel(directory: string, names: readonly string[], sizeOf: (name: string) => number): ShippedWheel | undefined {
  const wheels = names
    .map((name) => ({ name, match: /^perfhint-([^-]+)-.+\.whl$/.exec(name) }))
    .filter((item): item is { name: string; match: RegExpExecArray } => item.match !== null)
    .sort((a, b) => compareVersions(b.match[1], a.match[1]));
  if (wheels.length === 0) {
    return undefined;
  }
  const { name, match } = wheels[0];
  return { file: path.join(directory, name), name, version: match[1], marker: `${name} ${sizeOf(name)}` };
}

export function compareVersions(a: string, b: string): number {
  const parts = (text: string) => text.split(/[.+]/).map((part) => (/^\d+$/.test(part) ? Number(part) : part));
  const left = parts(a);
  const right = parts(b);
  for (let index = 0; index < Math.max(left.length, right.length); index++) {
    const x = left[index] ?? 0;
    const y = right[index] ?? 0;
    if (x === y) continue;
    if (typeof x === "number" && typeof y === "number") return x - y;
    return String(x) < String(y) ? -1 : 1;
  }
  return 0;
}

export type Decision =
  | { kind: "use"; interpreter: Interpreter }
  | { kind: "install"; basePython: string; reason: string; update: boolean }
  | { kind: "fail"; message: string };

export interface SetupState {
  candidate: Interpreter;
  candidateProbe: Probe;
  venvPython: string;
  /** undefined when the private environment does not exist. */
  venvProbe: Probe | undefined;
  venvMarker: string | undefined;
  wheel: ShippedWheel | undefined;
}

export function decide(state: SetupState): Decision {
  const { candidate, candidateProbe, wheel } = state;
  if (usable(candidateProbe)) {
    return { kind: "use", interpreter: candidate };
  }
  if (usable(state.venvProbe)) {
    if (wheel !== undefined && state.venvMarker?.trim() !== wheel.marker) {
      return { kind: "install", basePython: state.venvPython, reason: `updating the server to ${wheel.name}`, update: true };
    }
    return { kind: "use", interpreter: { command: state.venvPython, source: "private-environment" } };
  }
  if (candidateProbe.notFound) {
    return {
      kind: "fail",
      message:
        `perfhint: no Python found (\`${candidate.command}\` cannot be started). ` +
        `Install Python ${versionText(MIN_PYTHON)}+ or set perfhint.interpreter to one.`,
    };
  }
  if (tooOld(candidateProbe)) {
    return {
      kind: "fail",
      message:
        `perfhint: ${candidate.command} is Python ${versionText(candidateProbe.version ?? [])}; the server needs ` +
        `${versionText(MIN_PYTHON)} or newer. Set perfhint.interpreter to a newer Python.`,
    };
  }
  if (!candidateProbe.ran) {
    return {
      kind: "fail",
      message: `perfhint: ${candidate.command} did not run (${candidateProbe.error ?? "no answer"}). Set perfhint.interpreter to a working Python ${versionText(MIN_PYTHON)}+.`,
    };
  }
  if (wheel === undefined) {
    return {
      kind: "fail",
      message:
        `perfhint: the server is not installed for ${candidate.command} and this build of the extension ships no ` +
        `server wheel. Run \`${candidate.command} -m pip install perfhint\` or set perfhint.interpreter.`,
    };
  }
  const why = candidateProbe.perfhint === undefined ? "perfhint is not installed" : `perfhint cannot start (${candidateProbe.error})`;
  return { kind: "install", basePython: candidate.command, reason: `${why} for ${candidate.command}`, update: false };
}

export interface InstallStep {
  title: string;
  command: string;
  args: string[];
  kind: "venv" | "pip";
}

const PIP = ["-m", "pip", "install", "--disable-pip-version-check", "--no-input"];

export function installSteps(decision: { basePython: string; update: boolean }, venvDir: string, venvPython: string, wheel: ShippedWheel): InstallStep[] {
  if (decision.update) {
    return [
      { title: `Replacing the server with ${wheel.name}`, command: venvPython, args: [...PIP, "--force-reinstall", "--no-deps", wheel.file], kind: "pip" },
      { title: "Installing its dependencies from PyPI", command: venvPython, args: [...PIP, wheel.file], kind: "pip" },
    ];
  }
  return [
    { title: "Creating a private Python environment", command: decision.basePython, args: ["-m", "venv", "--clear", venvDir], kind: "venv" },
    {
      title: `Installing ${wheel.name} and its dependencies (onnxruntime, pygls, tree-sitter…) from PyPI`,
      command: venvPython,
      args: [...PIP, wheel.file],
      kind: "pip",
    },
  ];
}

export interface RunResult {
  code: number | null;
  output: string;
  spawnError?: string;
}

const NETWORK = [
  /Failed to establish a new connection/i,
  /Temporary failure in name resolution/i,
  /Could not find a version that satisfies/i,
  /No matching distribution found/i,
  /ConnectionError|ConnectTimeout|ReadTimeout|ProxyError|SSLError/,
  /Network is unreachable/i,
];

/** One line that says what failed and what to do; the full output is already in the output channel. */
export function failureLine(step: InstallStep, result: RunResult): string {
  const tail = " See Output > perfhint for the log.";
  if (result.spawnError !== undefined) {
    return `perfhint: could not start ${step.command} (${result.spawnError}). Set perfhint.interpreter to a Python ${versionText(MIN_PYTHON)}+.${tail}`;
  }
  const output = result.output;
  if (step.kind === "venv") {
    if (/ensurepip is not available|No module named venv|python3(\.\d+)?-venv/i.test(output)) {
      return (
        `perfhint: ${step.command} cannot create environments (no venv/ensurepip). Install python3-venv ` +
        `(Debian/Ubuntu: sudo apt install python3-venv) or set perfhint.interpreter to another Python.${tail}`
      );
    }
    return `perfhint: creating the private environment failed (${lastLine(output) || `exit status ${result.code}`}). Check that ${step.command} is a full Python install, or set perfhint.interpreter.${tail}`;
  }
  if (NETWORK.some((pattern) => pattern.test(output))) {
    return (
      "perfhint: pip could not download the server's dependencies from PyPI. Check the network or pip's proxy " +
      `(PIP_INDEX_URL, pip.conf), then run "perfhint: Install the server".${tail}`
    );
  }
  return `perfhint: installing the server failed (${lastLine(output) || `exit status ${result.code}`}). Fix that and run "perfhint: Install the server" again.${tail}`;
}

export interface Runner {
  run(command: string, args: string[], onOutput: (text: string) => void): Promise<RunResult>;
}

export type InstallOutcome = { ok: true } | { ok: false; message: string };

/** Run the steps in order; stop at the first failure with its one line. */
export async function runInstall(
  steps: readonly InstallStep[],
  runner: Runner,
  log: (line: string) => void,
  report: (message: string, increment: number) => void,
): Promise<InstallOutcome> {
  for (const step of steps) {
    report(step.title, 100 / (steps.length + 1));
    log(`> ${[step.command, ...step.args].map(quoteArg).join(" ")}`);
    const result = await runner.run(step.command, step.args, (text) => log(text.replace(/\s+$/, "")));
    if (result.spawnError !== undefined || result.code !== 0) {
      const message = failureLine(step, result);
      log(message);
      return { ok: false, message };
    }
  }
  return { ok: true };
}

export function quoteArg(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`;
}

function lastLine(text: string): string {
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "");
  const last = lines.pop() ?? "";
  return last.length > 200 ? `${last.slice(0, 200)}…` : last;
}
