/**
 * Which Python runs the server, and where the private environment lives.
 *
 * What is hard: three places can name a Python and they disagree. The order is fixed and shown to the
 * user (Output > perfhint names the source): the `perfhint.interpreter` setting, else the Python
 * extension's active environment for the file's folder (when that extension is installed and has
 * one), else `python3` on PATH (`python` on Windows, where `python3` is often the Store stub). The
 * private environment under the extension's global storage is not in this order: it is where
 * perfhint is installed when the chosen Python lacks it (setup.ts decides). No `vscode` import here.
 */

import * as path from "node:path";

export type InterpreterSource = "setting" | "python-extension" | "path" | "private-environment";

export interface Interpreter {
  command: string;
  source: InterpreterSource;
}

export interface InterpreterLookup {
  /** The `perfhint.interpreter` setting, expanded; undefined when empty. */
  setting: string | undefined;
  /** The Python extension's active environment's executable; undefined when absent or failing. */
  pythonExtension: () => Promise<string | undefined>;
  platform: NodeJS.Platform;
}

export function defaultPythonCommand(platform: NodeJS.Platform): string {
  return platform === "win32" ? "python" : "python3";
}

export async function resolveInterpreter(lookup: InterpreterLookup): Promise<Interpreter> {
  if (lookup.setting !== undefined) {
    return { command: lookup.setting, source: "setting" };
  }
  let fromExtension: string | undefined;
  try {
    fromExtension = await lookup.pythonExtension();
  } catch {
    fromExtension = undefined; // an extension that throws is an extension that has no answer
  }
  if (fromExtension !== undefined && fromExtension.trim() !== "") {
    return { command: fromExtension, source: "python-extension" };
  }
  return { command: defaultPythonCommand(lookup.platform), source: "path" };
}

export function describeSource(source: InterpreterSource): string {
  switch (source) {
    case "setting":
      return "the perfhint.interpreter setting";
    case "python-extension":
      return "the Python extension's active environment";
    case "path":
      return "PATH";
    case "private-environment":
      return "perfhint's private environment";
  }
}

/** `<globalStorage>/venv`: one environment per user and extension, shared by all workspaces. */
export function venvDir(globalStorage: string): string {
  return path.join(globalStorage, "venv");
}

export function venvPython(dir: string, platform: NodeJS.Platform): string {
  return platform === "win32" ? path.win32.join(dir, "Scripts", "python.exe") : path.posix.join(dir, "bin", "python");
}

/** Records which wheel the environment was built from, so a new extension version reinstalls. */
export function venvMarker(dir: string): string {
  return path.join(dir, "perfhint-wheel.txt");
}

/**
 * The executable from the Python extension's API (`environments.getActiveEnvironmentPath` then
 * `resolveEnvironment`), typed only as far as we use it, so no dependency on its npm package.
 */
export interface PythonEnvironmentsApi {
  environments: {
    getActiveEnvironmentPath(resource?: unknown): { id: string; path: string } | undefined;
    resolveEnvironment(environment: { id: string; path: string } | string): Promise<
      { executable: { uri?: { fsPath: string } | undefined } } | undefined
    >;
    onDidChangeActiveEnvironmentPath?: (listener: (event: unknown) => unknown) => { dispose(): unknown };
  };
}

export async function executableFromPythonApi(api: PythonEnvironmentsApi | undefined, resource?: unknown): Promise<string | undefined> {
  if (api === undefined || api.environments === undefined) {
    return undefined;
  }
  const active = api.environments.getActiveEnvironmentPath(resource);
  if (active === undefined) {
    return undefined;
  }
  const resolved = await api.environments.resolveEnvironment(active);
  const fsPath = resolved?.executable?.uri?.fsPath;
  if (fsPath !== undefined && fsPath !== "") {
    return fsPath;
  }
  // An environment the extension cannot resolve (deleted, still being created): its path is all we have,
  // and it is an executable only when it is not a directory; the probe will tell.
  return active.path !== "" ? active.path : undefined;
}
