/**
 * Which model the server will load, for the status bar: read from the bundle's manifest.json.
 *
 * What is hard: the client must not guess differently from the server. It follows the server's own
 * order (engine.resolve_bundle_path): `perfhint.bundlePath`, else $PERFHINT_BUNDLE, else the model
 * shipped inside the installed perfhint, which only the server can see, so the client says
 * "default model" there. The manifest is untrusted JSON: only three strings are read from it, and a
 * missing or malformed file is a status ("no model"), never an exception. No `vscode` import here.
 */

import * as path from "node:path";

export const MANIFEST_FILE = "manifest.json"; // server/perfhint/bundle.py MANIFEST_FILE
export const BUNDLE_ENV = "PERFHINT_BUNDLE"; // server/perfhint/engine.py BUNDLE_ENV

export interface ModelInfo {
  name: string;
  version: string;
  purpose: string; // "default" | "test" | "user"
}

/** The bundle directory the server will load, or undefined for "the one shipped with perfhint". */
export function bundleDirectory(configured: string | undefined, env: Record<string, string | undefined>): string | undefined {
  if (configured !== undefined && configured.trim() !== "") {
    return configured.trim();
  }
  const fromEnv = env[BUNDLE_ENV];
  return fromEnv !== undefined && fromEnv.trim() !== "" ? fromEnv.trim() : undefined;
}

export function manifestPath(bundle: string): string {
  return path.join(bundle, MANIFEST_FILE);
}

export function parseManifest(text: string): ModelInfo | undefined {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return undefined;
  }
  const model = (data as { model?: unknown } | null)?.model as Record<string, unknown> | undefined;
  if (model === undefined || model === null || typeof model !== "object") {
    return undefined;
  }
  const text_ = (value: unknown) => (typeof value === "string" ? value.slice(0, 80) : "");
  const name = text_(model.name);
  if (name === "") {
    return undefined;
  }
  return { name, version: text_(model.version), purpose: text_(model.purpose) || "user" };
}
