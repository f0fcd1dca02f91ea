/**
 * Settings: which `perfhint.*` keys belong to the server, which to this client, and what the server is sent.
 *
 * What is hard: package.json's `contributes.configuration` is the one source of truth for the names,
 * types and defaults (the README table is generated from it and a test diffs the two, another test
 * checks the server keys against server/perfhint/settings.py). The server pulls the `perfhint`
 * section with workspace/configuration; it must get only its own keys, with paths made absolute for
 * the folder the file is in, because the server resolves a relative path against one root and a
 * multi-root window has several. Only values the user set are sent: a default sent as a value would
 * override the project's `[tool.perfhint]` in pyproject.toml (the server applies editor settings
 * over project ones), so unset keys are left out and the server's defaults, which the tests check
 * equal package.json's, apply. No `vscode` import here.
 */

import * as path from "node:path";

export const SECTION = "perfhint";

/** Keys the server reads (server/perfhint/settings.py `_KEYS`, less the pyproject-only `exclude`). */
export const SERVER_KEYS = [
  "enable",
  "metrics",
  "hideBelow",
  "samples",
  "runtimeDevice",
  "targetGpu",
  "bundlePath",
  "debounceMs",
  "baseline",
] as const;

/** Keys only this extension reads; the server never sees them. */
export const CLIENT_KEYS = ["interpreter", "decorations"] as const;

export type ServerKey = (typeof SERVER_KEYS)[number];
export type ClientKey = (typeof CLIENT_KEYS)[number];

/** Changing one of these restarts the server (a new interpreter, or a new model to load). */
export const RESTART_KEYS: readonly string[] = ["interpreter", "bundlePath"];

export interface PathContext {
  /** The workspace folder of the file (or the first folder); relative paths are joined to it. */
  workspaceFolder?: string;
  home?: string;
}

/** `${workspaceFolder}`, `${userHome}`, `~` and a relative path, made absolute. */
export function expandPath(value: string, context: PathContext): string {
  let text = value.trim();
  if (context.workspaceFolder !== undefined) {
    text = text.split("${workspaceFolder}").join(context.workspaceFolder);
  }
  if (context.home !== undefined) {
    text = text.split("${userHome}").join(context.home);
    if (text === "~" || text.startsWith("~/") || text.startsWith("~\\")) {
      text = context.home + text.slice(1);
    }
  }
  if (text !== "" && !path.isAbsolute(text) && context.workspaceFolder !== undefined && !text.includes("${")) {
    text = path.join(context.workspaceFolder, text);
  }
  return text;
}

/** What `WorkspaceConfiguration.inspect` reports for one key (the parts we read). */
export interface Inspection {
  globalValue?: unknown;
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
  globalLanguageValue?: unknown;
  workspaceLanguageValue?: unknown;
  workspaceFolderLanguageValue?: unknown;
}

/**
 * The value the user set, in VS Code's precedence (language-specific values over all others, then
 * folder over workspace over user); undefined when only the default applies.
 */
export function explicitValue(inspection: Inspection | undefined): unknown {
  if (inspection === undefined) return undefined;
  return (
    inspection.workspaceFolderLanguageValue ??
    inspection.workspaceLanguageValue ??
    inspection.globalLanguageValue ??
    inspection.workspaceFolderValue ??
    inspection.workspaceValue ??
    inspection.globalValue
  );
}

/** The object the server gets for the `perfhint` section: its own keys, unset ones left out. */
export function serverConfig(section: Record<string, unknown>, context: PathContext): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  for (const key of SERVER_KEYS) {
    const value = section[key];
    if (value === undefined || value === null) {
      continue;
    }
    if (key === "bundlePath") {
      if (typeof value !== "string" || value.trim() === "") {
        continue; // empty: $PERFHINT_BUNDLE or the shipped model, which the server finds itself
      }
      config[key] = expandPath(value, context);
      continue;
    }
    config[key] = value;
  }
  return config;
}

/** The configured interpreter, expanded; undefined when the setting is empty. */
export function configuredInterpreter(value: unknown, context: PathContext): string | undefined {
  if (typeof value !== "string" || value.trim() === "") {
    return undefined;
  }
  const text = value.trim();
  // A bare command name (`python3.12`) is looked up on PATH by the OS, not joined to the folder.
  if (!text.includes("/") && !text.includes("\\") && !text.startsWith("~") && !text.includes("${")) {
    return text;
  }
  return expandPath(text, context);
}

/** Which of `keys` (e.g. from a configuration change) need a server restart. */
export function needsRestart(changed: (key: string) => boolean): boolean {
  return RESTART_KEYS.some((key) => changed(`${SECTION}.${key}`));
}
