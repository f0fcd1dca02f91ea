/**
 * Running Python: the probe and the install steps, as child processes. No `vscode` import here.
 *
 * What is hard: a Python that hangs (a broken sitecustomize, a network home directory) must not hang
 * activation, so the probe has a timeout. The probe runs in the OS temp directory and drops the
 * working directory from sys.path (setup.PROBE_SCRIPT), because a folder named `perfhint` there would
 * otherwise be "importable" and fool the check; it does not use `-I`, which would also hide a
 * `pip install --user` that the server itself would see.
 */

import { spawn } from "node:child_process";
import * as os from "node:os";

import { parseProbe, PROBE_SCRIPT, type Probe, type Runner, type RunResult } from "./setup";

export const PROBE_TIMEOUT_MS = 60_000;

/** The environment every Python we start gets: UTF-8 pipes, no pip self-update nagging. */
export function pythonEnv(base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...base, PYTHONIOENCODING: "utf-8", PYTHONUNBUFFERED: "1", PIP_DISABLE_PIP_VERSION_CHECK: "1" };
}

export function runProcess(
  command: string,
  args: readonly string[],
  options: { cwd?: string; timeoutMs?: number; onOutput?: (text: string) => void } = {},
): Promise<RunResult & { stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    let stdout = "";
    let stderr = "";
    let settled = false;
    const finish = (result: RunResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...result, stdout, stderr });
    };
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(command, [...args], { cwd: options.cwd ?? os.tmpdir(), env: pythonEnv(process.env), windowsHide: true });
    } catch (error) {
      resolve({ code: null, output: "", spawnError: String(error), stdout, stderr });
      return;
    }
    const timer = options.timeoutMs
      ? setTimeout(() => {
          child.kill();
          finish({ code: null, output: stdout + stderr, spawnError: `timed out after ${options.timeoutMs} ms` });
        }, options.timeoutMs)
      : undefined;
    child.stdout?.setEncoding("utf8").on("data", (text: string) => {
      stdout += text;
      options.onOutput?.(text);
    });
    child.stderr?.setEncoding("utf8").on("data", (text: string) => {
      stderr += text;
      options.onOutput?.(text);
    });
    child.on("error", (error: NodeJS.ErrnoException) => finish({ code: null, output: stdout + stderr, spawnError: error.code ?? error.message }));
    child.on("close", (code) => finish({ code, output: stdout + stderr }));
  });
}

export async function probePython(python: string): Promise<Probe> {
  const result = await runProcess(python, ["-c", PROBE_SCRIPT], { timeoutMs: PROBE_TIMEOUT_MS });
  if (result.spawnError !== undefined && result.spawnError.startsWith("timed out")) {
    return { ran: false, error: `${python} did not answer within ${PROBE_TIMEOUT_MS / 1000} s` };
  }
  return parseProbe(result.stdout, result.stderr, result.code, result.spawnError);
}

export const processRunner: Runner = {
  run: (command, args, onOutput) => runProcess(command, args, { onOutput }),
};
