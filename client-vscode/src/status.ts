/**
 * The status bar item: which model, where it runs, and the active file's Σ Δ.
 *
 * What is hard: Σ Δ is per unit (bytes and seconds never add up), and the server already computes
 * it for the code lens ("… · Σ Δ +3.1 MiB vs saved"), so the client reads it from the lens titles
 * instead of computing a second, possibly different number. A lens title is display text, so the
 * parsing is forgiving: a title it cannot read contributes nothing. The item must also say when
 * there is nothing to show and why (setting up, server stopped, hints off), because an empty
 * status bar reads as "all is well". No `vscode` import here.
 */

import type { ModelInfo } from "./model";

export type ServerState = "starting" | "running" | "setup" | "installing" | "failed" | "stopped";

export interface LensSummary {
  /** One entry per unit: "+3.1 MiB vs saved". */
  deltas: string[];
  testModel: boolean;
  calculating: boolean;
  failed: boolean;
  /** The first lens line that is a problem for the whole file (no bundle, too large). */
  problem?: string;
}

const DELTA = /Σ Δ (.+?) vs (.+)$/;

export function summariseLenses(titles: readonly string[]): LensSummary {
  const summary: LensSummary = { deltas: [], testModel: false, calculating: false, failed: false };
  for (const title of titles) {
    if (title.includes("[TEST model]")) summary.testModel = true;
    if (title.includes(" largest ")) {
      const match = DELTA.exec(title);
      if (match !== null) summary.deltas.push(`${match[1]} vs ${match[2]}`);
    } else if (title.startsWith("perfhint: calculating")) {
      summary.calculating = true;
    } else if (title.startsWith("perfhint: prediction failed")) {
      summary.failed = true;
    } else if (summary.problem === undefined) {
      summary.problem = title;
    }
  }
  return summary;
}

export interface StatusInput {
  state: ServerState;
  enabled: boolean;
  model?: ModelInfo;
  /** Set when the bundle is the one shipped with perfhint (bundlePath and $PERFHINT_BUNDLE unset). */
  defaultModel: boolean;
  runtimeDevice: string;
  targetGpu: string;
  lenses?: LensSummary;
  message?: string;
}

export interface StatusView {
  text: string;
  tooltip: string;
}

export function modelLabel(input: Pick<StatusInput, "model" | "defaultModel">, testFromLens = false): string {
  if (input.model !== undefined) {
    const test = input.model.purpose === "test" ? " (test)" : "";
    return `${input.model.name}${test}`;
  }
  if (input.defaultModel) {
    return testFromLens ? "default model (test)" : "default model";
  }
  return "no model";
}

export function statusView(input: StatusInput): StatusView {
  const icon = "$(pulse)";
  switch (input.state) {
    case "setup":
      return { text: `${icon} perfhint: set up`, tooltip: input.message ?? "perfhint: the server is not installed; click to set it up" };
    case "installing":
      return { text: "$(sync~spin) perfhint: installing", tooltip: "perfhint: installing the server into a private environment" };
    case "failed":
      return { text: "$(error) perfhint", tooltip: input.message ?? "perfhint: the server failed; see Output > perfhint" };
    case "stopped":
      return { text: `${icon} perfhint: stopped`, tooltip: input.message ?? "perfhint: the server is not running" };
    case "starting":
      return { text: "$(sync~spin) perfhint", tooltip: "perfhint: starting the server" };
    case "running":
      break;
  }
  const lenses = input.lenses;
  const model = modelLabel(input, lenses?.testModel ?? false);
  const parts = [`perfhint: ${model}`, input.runtimeDevice];
  if (!input.enabled) {
    parts.push("off");
  } else if (lenses !== undefined && lenses.deltas.length > 0) {
    parts.push(`Σ Δ ${lenses.deltas.map((delta) => delta.replace(/ vs .*$/, "")).join(", ")}`);
  } else if (lenses?.calculating) {
    parts.push("…");
  }
  const tooltip = [
    `Model: ${input.model !== undefined ? `${input.model.name} ${input.model.version} (purpose: ${input.model.purpose})` : model}`,
    input.model?.purpose === "test" || lenses?.testModel ? "TEST model: random weights, the numbers are not predictions" : undefined,
    `Model runs on: ${input.runtimeDevice} · latencies predicted for: ${input.targetGpu}`,
    !input.enabled ? "Hints are off (perfhint: Toggle hints)" : undefined,
    lenses !== undefined && lenses.deltas.length > 0 ? `This file: Σ Δ ${lenses.deltas.join("; ")}` : undefined,
    lenses?.problem,
    lenses?.failed ? "Some predictions failed: see Output > perfhint" : undefined,
    "Click for perfhint commands",
  ].filter((line): line is string => line !== undefined);
  return { text: parts.join(" · "), tooltip: tooltip.join("\n") };
}
